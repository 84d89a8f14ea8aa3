"""Issue 20's silent cases whose fix is a run that works (not an error), one row each.

The bad-input table (``test_bad_inputs.py``, rows ``i20-*``) holds the cases that must now
fail with one clear line. The rows here must *work* and say so: adapters keep training after
mmengine replaced the norms they hook, a stale work_dir lock is taken over, an unmeasured figure
is ``null`` / "not measured", the README's drop-in snippet builds on an unmodified mmseg base.
Each row fails on the code before issue 20 (adapters without optimizer state, ``0.0 MB``,
``TypeError ... 'pretrained'``).
"""
import json
import os.path as osp
import re
import socket
import sys

import pytest
import torch
from mmengine.config import Config

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, osp.join(REPO, 'tests', 'test_scale'))
import toy_scale as toy  # noqa: E402

SYNC_BN = dict(type='SyncBN', requires_grad=True)  # mmseg's bases (upernet_r50.py) have it


def resnet(method, norm_cfg=SYNC_BN):
    """A tiny ResNet-18; not ``zero_init_residual`` (its zero last norms would feed the
    serial adapters zeros: no weight gradient to look for)."""
    return dict(type='TunedBackbone', method=method,
                module=dict(type='mmdet.ResNet', depth=18, base_channels=8, out_indices=(3, ),
                            norm_cfg=norm_cfg, zero_init_residual=False))


def train_toy(tmp_path, backbone=None, max_iters=2, hooks=('FiniteLossHook', ), work=None,
              extra=''):
    config = toy.write_config(str(tmp_path / 'toy.py'), max_iters=max_iters, interval=2,
                              extra=f'custom_hooks = {[dict(type=h) for h in hooks]!r}\n'
                              + extra)
    if backbone is not None:
        cfg = Config.fromfile(config)
        cfg.model.backbone = backbone
        cfg.dump(config)
    work = work or str(tmp_path / 'work')
    toy.import_tool('train.py').main([config, '--work-dir', work])
    return work


@pytest.mark.parametrize('method', ['adapter', 'lorand', 'e3va'])
def test_syncbn_reverted_by_the_runner_keeps_adapters_training(tmp_path, method):
    """One process: mmengine's Runner reverts every SyncBN to a BN (new modules). Before issue
    20 the adapters' hooks stayed on the old norms: Adapter/LoRand trained neck and head only
    (no optimizer state for the adapters), E3VA died with ``KeyError: '0.0.res'``."""
    work = train_toy(tmp_path, resnet(method))
    ckpt = toy.load(osp.join(work, 'iter_2.pth'))
    layers = 'highway' if method == 'e3va' else 'adapters'
    names = [k for k in ckpt['state_dict'] if k.startswith(f'backbone.{layers}.')]
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='ToyTunedClassifier',
                              backbone=resnet(method, norm_cfg=dict(type='BN'))))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(names) == sum(n.startswith(f'backbone.{layers}.') for n in trainable) > 0
    state = ckpt['optimizer']['state']
    assert len(state) == len(trainable)  # every trainable tensor took AdamW steps
    assert all(float(s['exp_avg_sq'].abs().sum()) > 0 for s in state.values())


@pytest.mark.parametrize('to_sync', [True, False], ids=['bn-to-syncbn', 'syncbn-to-bn'])
def test_norm_conversion_in_both_directions_keeps_adapter_gradients(to_sync):
    """``convert_sync_batchnorm`` (DDP with ``sync_bn``) and ``revert_sync_batchnorm`` (one
    process) replace the hooked norms; the adapters still change the output and get
    gradients, the frozen trunk (eval mode) runs as before."""
    from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
    from mmengine.registry import MODELS
    torch.manual_seed(0)
    bb = MODELS.build(resnet('adapter', norm_cfg=dict(type='BN') if to_sync else SYNC_BN))
    bb.init_weights()
    bb.train()
    with torch.no_grad():
        for p in bb.adapters.parameters():
            p.normal_(0, 0.1)  # an adapter that changes the output
    x = torch.randn(2, 3, 32, 32)
    before = bb(x)[0].detach()
    bb = convert_sync_batchnorm(bb) if to_sync else revert_sync_batchnorm(bb)
    bb.train()  # as mmengine's train loop does (convert_sync_batchnorm drops the eval mode)
    norm = type(bb.layer1[0].norm2).__name__
    assert norm == ('SyncBatchNorm' if to_sync else '_BatchNormXd')
    out = bb(x)[0]
    torch.testing.assert_close(out.detach(), before, rtol=0, atol=0)
    out.sum().backward()
    grads = {n: p.grad for n, p in bb.adapters.named_parameters()}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_second_run_into_a_busy_work_dir_is_refused(tmp_path):
    """Two real trainings into one work_dir: the second is refused naming the first's pid;
    the first's checkpoint is untouched (before issue 20 both ran and exited 0)."""
    import hashlib
    import time
    work, marker = str(tmp_path / 'work'), str(tmp_path / 'stalled')
    config = toy.write_config(
        str(tmp_path / 'toy.py'), max_iters=4, interval=2,
        extra=f"custom_hooks = [dict(type='StallHook', at_iter=2, marker={marker!r})]")
    first = toy.train(config, work, log=str(tmp_path / 'first.log'))
    try:
        deadline = time.time() + 240
        while not osp.exists(marker) and first.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert osp.exists(marker), open(tmp_path / 'first.log').read()[-2000:]
        digest = hashlib.sha256(open(osp.join(work, 'iter_2.pth'), 'rb').read()).hexdigest()
        with pytest.raises(SystemExit) as info:
            toy.import_tool('train.py').main([config, '--work-dir', work])
        assert re.search(rf'work_dir .*work is in use by pid {first.pid} on this host',
                         str(info.value.code)), info.value.code
        assert hashlib.sha256(open(osp.join(work, 'iter_2.pth'), 'rb').read()).hexdigest() \
            == digest
    finally:
        first.kill()
        first.wait()


def test_stale_work_dir_lock_is_taken_over(tmp_path):
    """A lock left by a killed run (its pid no longer runs on this host) is replaced; the lock
    is gone once the run ends."""
    work = tmp_path / 'work'
    work.mkdir()
    lock = work / '.mmsidetune_run.lock'
    pid = 2**22 + 12345  # above Linux's default pid_max: no process has it
    lock.write_text(json.dumps(dict(pid=pid, host=socket.gethostname(), started='x')))
    train_toy(tmp_path, work=str(work))
    assert (work / 'iter_2.pth').is_file() and not lock.exists()


def test_one_iteration_memory_is_null_not_zero(tmp_path):
    """On CPU iteration 0 is not profiled: a one-iteration run measured no memory. (A
    subprocess: in one process, runs started in the same second share mmengine's logger.)"""
    config = toy.write_config(str(tmp_path / 'toy.py'), max_iters=1, interval=1,
                              extra="custom_hooks = [dict(type='TrainingCostHook')]\n"
                              "log_level = 'INFO'")
    work = str(tmp_path / 'work')
    assert toy.train(config, work, log=str(tmp_path / 'out.log')).wait(timeout=300) == 0
    summary = json.load(open(osp.join(work, 'cost_summary.json')))
    assert summary['peak_mem_mb'] is None and summary['segments'][0]['peak_mem_mb'] is None
    log = open(tmp_path / 'out.log').read()
    assert re.search(r'TrainingCostHook summary: 1 iterations, peak memory not measured', log)
    assert '0.0 MB' not in log


def readme_snippet() -> str:
    text = open(osp.join(REPO, 'README.md')).read()
    start = text.index('## Use it in your own configs')
    block = text[start:].split('```python\n', 1)[1].split('```', 1)[0]
    assert "type='TunedBackbone'" in block
    return block


def test_readme_drop_in_on_an_unmodified_mmseg_base(tmp_path):
    """The README's snippet on ``mmseg::_base_/models/upernet_r50.py`` as it is: mmseg's
    ``EncoderDecoder`` passes ``model.pretrained`` to the backbone; the tuned backbone loads it
    as the trunk's pretrained file (before issue 20: ``TypeError ... 'pretrained'``)."""
    from mmengine.registry import MODELS, init_default_scope
    path = tmp_path / 'dropin.py'
    path.write_text("_base_ = ['mmseg::_base_/models/upernet_r50.py']\n" + readme_snippet()
                    + "model.update(data_preprocessor=dict(type='SegDataPreProcessor'))\n")
    cfg = Config.fromfile(str(path))
    base = Config.fromfile(str(path)).model.pretrained
    assert base == 'open-mmlab://resnet50_v1c'
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)  # no init_weights: the file is downloaded there
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=base)
    assert model.backbone.tuning_method == 'e3va'
