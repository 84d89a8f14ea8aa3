"""Kill a run hard (SIGKILL), resume it with ``--resume``: the same state as a run never stopped.

mmengine 0.10.7 restores on resume: model weights, optimizer state, parameter-scheduler state,
the iteration/epoch counters, the message hub, and for ``IterBasedTrainLoop`` the dataloader
position (it draws and drops ``iter`` batches from a sampler re-seeded with the checkpoint's
``seed``). It does NOT restore the global RNG state: it re-seeds ``torch``/``numpy``/``random``
with the same seed, so randomness drawn during training (dropout, DropPath, random
augmentation) differs after a resume. The toy run draws none (frozen trunk in eval mode,
``drop_path_rate=0``, samples fixed by index), so its resumed state must be bitwise identical.
"""
import glob
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import time

import pytest
import torch

import toy_scale as toy

MAX_ITERS, INTERVAL = 6, 2


@pytest.fixture(scope='module')
def reference_run(tmp_path_factory):
    """A 6-iteration run never interrupted (checkpoints every 2 iterations)."""
    root = tmp_path_factory.mktemp('reference')
    config = toy.write_config(str(root / 'toy.py'), MAX_ITERS, INTERVAL)
    assert toy.train(config, str(root / 'work')).wait(timeout=120) == 0, \
        (root / 'work.log').read_text()[-3000:]
    return toy.load(str(root / 'work' / f'iter_{MAX_ITERS}.pth'))


def assert_same_state(a: dict, b: dict):
    assert a['meta']['iter'] == b['meta']['iter'] == MAX_ITERS
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    opt_a, opt_b = a['optimizer'], b['optimizer']
    assert opt_a['param_groups'] == opt_b['param_groups']
    assert opt_a['state'].keys() == opt_b['state'].keys() and opt_a['state']
    for i, st in opt_a['state'].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(opt_b['state'][i][k])), (i, k)
    assert a['param_schedulers'] == b['param_schedulers']


def _wait_for(path, proc, timeout=120):
    start = time.time()
    while not osp.exists(path):
        assert proc.poll() is None, 'the run ended before reaching the kill point'
        assert time.time() - start < timeout
        time.sleep(0.05)


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, reference_run):
    config = toy.write_config(str(tmp_path / 'toy.py'), MAX_ITERS, INTERVAL, extra=(
        f"custom_hooks = [dict(type='StallHook', at_iter=5, marker={str(tmp_path / 'at5')!r})]"))
    work = str(tmp_path / 'work')
    proc = toy.train(config, work)
    _wait_for(str(tmp_path / 'at5'), proc)  # iteration 5 done, checkpoint of iteration 4 written
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not osp.exists(osp.join(work, f'iter_{MAX_ITERS}.pth'))
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work, 'iter_4.pth')

    # resume with a config that no longer stalls; auto-resume from work_dir's last_checkpoint
    toy.write_config(config, MAX_ITERS, INTERVAL)
    log = str(tmp_path / 'resume.log')
    assert toy.train(config, work, '--resume', log=log).wait(timeout=120) == 0, \
        open(log).read()[-3000:]
    assert 'Advance dataloader 4 steps' in open(log).read()
    resumed = toy.load(osp.join(work, f'iter_{MAX_ITERS}.pth'))
    assert_same_state(resumed, reference_run)


def test_kill_during_save_keeps_last_good_checkpoint_and_resumes(tmp_path, reference_run):
    """SIGKILL inside the write of iteration 4's checkpoint (bytes written, not yet fsync-ed and
    renamed), with ``max_keep_ckpts=1`` (mmengine deletes the old file before saving)."""
    config = toy.write_config(str(tmp_path / 'toy.py'), MAX_ITERS, INTERVAL, extra=(
        "custom_hooks = [dict(type='KillDuringSaveHook', at_iter=4)]\n"
        'default_hooks.update(checkpoint=dict(type="AtomicCheckpointHook", interval=2, '
        'by_epoch=False, max_keep_ckpts=1))'))
    work = str(tmp_path / 'work')
    proc = toy.train(config, work)
    assert proc.wait(timeout=120) == -signal.SIGKILL, (tmp_path / 'work.log').read_text()[-3000:]

    partial = glob.glob(osp.join(work, '.iter_4.pth.*.partial'))
    assert len(partial) == 1 and os.path.getsize(partial[0]) > 0  # the save was under way
    assert not osp.exists(osp.join(work, 'iter_4.pth'))
    with open(osp.join(work, 'last_checkpoint')) as f:
        last = f.read().strip()
    assert last == osp.join(work, 'iter_2.pth')
    good = toy.load(last)  # intact: loads, and is the reference run's iteration-2 state
    assert good['meta']['iter'] == 2

    # Resume through mmdet's own tools/train.py, as users of `mim train` do: the checkpoint is
    # trusted by AtomicCheckpointHook (auto-resume: the run's work_dir), not by our tools/train.py.
    toy.write_config(config, MAX_ITERS, INTERVAL, extra=(
        'default_hooks.update(checkpoint=dict(type="AtomicCheckpointHook", interval=2, '
        'by_epoch=False, max_keep_ckpts=1))'))
    log = str(tmp_path / 'resume.log')
    assert toy.mim_train(config, work, '--resume', log=log) == 0, open(log).read()[-3000:]
    assert 'Advance dataloader 2 steps' in open(log).read()
    assert not glob.glob(osp.join(work, '.*.partial'))  # removed when training restarted
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == [f'iter_{MAX_ITERS}.pth']
    assert_same_state(toy.load(osp.join(work, f'iter_{MAX_ITERS}.pth')), reference_run)


def test_two_cpu_processes_match_one_process(tmp_path, reference_run):
    """tools/dist_train.sh with 2 gloo processes x 2 samples = the 1-process run with 4 samples
    per step: the same trainable weights after 6 AdamW steps; DDP reduces only the trainable
    tensors and the run raises no unused-parameter error with find_unused_parameters=False."""
    inspect = str(tmp_path / 'ddp.json')
    config = toy.write_config(
        str(tmp_path / 'toy.py'), MAX_ITERS, INTERVAL, batch_size=2,
        extra=f"custom_hooks = [dict(type='DDPInspectHook', out={inspect!r})]")
    work, log = str(tmp_path / 'work'), str(tmp_path / 'ddp.log')
    with socket.socket() as sock:  # a free port for torchrun's rendezvous
        sock.bind(('127.0.0.1', 0))
        port = str(sock.getsockname()[1])
    with open(log, 'w') as out:
        rc = subprocess.run(
            ['bash', osp.join(toy.REPO, 'tools', 'dist_train.sh'), config, '2', '--work-dir', work],
            cwd=toy.REPO, env=dict(toy.env(), PYTHON=toy.PYTHON, PORT=port,
                     CUDA_VISIBLE_DEVICES=''),  # the CPU (gloo) path, on any machine
            stdout=out, stderr=subprocess.STDOUT, timeout=240).returncode
    text = open(log).read()
    assert rc == 0, text[-3000:]
    assert 'Expected to have finished reduction' not in text  # DDP's unused-parameter error
    with open(inspect) as f:
        info = json.load(f)
    assert info['wrapper'] == 'CPUDistributedDataParallel' and info['world_size'] == 2
    assert info['backend_name'] == 'gloo' and info['find_unused_parameters'] == 0
    assert info['frozen_tensors'] > 0
    assert info['num_parameter_tensors'] == info['trainable_tensors']
    assert info['total_parameter_size_bytes'] == info['trainable_bytes']
    assert sum(int(b) for b in info['bucket_sizes'].split(', ')) == info['trainable_bytes']

    ddp = toy.load(osp.join(work, f'iter_{MAX_ITERS}.pth'))
    assert ddp['meta']['iter'] == MAX_ITERS
    ref = reference_run['state_dict']
    assert ddp['state_dict'].keys() == ref.keys()
    for k, v in ddp['state_dict'].items():
        torch.testing.assert_close(v, ref[k], rtol=1e-4, atol=1e-5, msg=k)
    # not vacuous: between iterations 2 and 6 the trainable weights moved, the frozen ones not
    early = toy.load(osp.join(work, 'iter_2.pth'))['state_dict']
    # state-dict keys of the trainable parameters (a TunedBackbone's keys are in the upstream
    # layout, its parameter names keep the 'module.' prefix: match by identity)
    state = toy.build_toy_model().state_dict(keep_vars=True)
    trainable = {k for k, v in state.items()
                 if isinstance(v, torch.nn.Parameter) and v.requires_grad}
    assert sum(not torch.equal(early[k], ref[k]) for k in trainable) > 0.9 * len(trainable)
    assert all(torch.equal(early[k], ref[k]) for k in ref if k not in trainable)
