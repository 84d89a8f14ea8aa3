"""Quiet logs: no pkg_resources, Kineto USDT or CPUAllocator lines around a profiled step.

docs/cost_accounting.md ("Quiet logs"). The child process loads the demo config (its
``mmdet::`` base makes mmengine import and reload ``pkg_resources``) and measures three CPU
steps with :class:`StepMemoryMeter`, each freeing a tensor made before the profiler started
(the CPUAllocator condition); what the step itself writes to stderr must still come through.
"""
import os
import subprocess
import sys

from mmsidetune.cost.quiet import dropped_profiler_lines

CHILD = r'''
import sys
import torch
import torch.nn as nn
import mmsidetune
from mmengine.config import Config
from mmsidetune.cost import StepMemoryMeter

Config.fromfile(sys.argv[1])
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.AdamW(model.parameters())
made_before = [torch.randn(1000) for _ in range(3)]
for step in range(3):
    with StepMemoryMeter(model, optimizer) as meter:
        made_before.pop()  # freed inside the profiled step
        model(torch.randn(8, 64)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        print(f'step {step} says hello', file=sys.stderr, flush=True)
    print(f'peak {meter.result.peak_bytes}', flush=True)
'''

NOISE = ('pkg_resources', 'USDT:', 'SyncActivityProfilerHandler', 'CPUAllocator',
         'Memory block of unknown size')


def test_profiled_steps_print_no_profiler_or_deprecation_lines(repo_root, demo_config):
    env = dict(os.environ, PYTHONPATH=repo_root, OMP_NUM_THREADS='1')
    env.pop('PYTHONWARNINGS', None)
    env.pop('KINETO_LOG_LEVEL', None)
    env.pop('TORCH_CPP_LOG_LEVEL', None)
    proc = subprocess.run([sys.executable, '-c', CHILD, demo_config], capture_output=True,
                          text=True, env=env, timeout=120, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert [line for line in out.splitlines() if any(n in line for n in NOISE)] == []
    # the step's own stderr lines and the results come through, in order
    assert [line for line in proc.stderr.splitlines() if 'says hello' in line] == [
        f'step {i} says hello' for i in range(3)]
    peaks = [line for line in proc.stdout.splitlines() if line.startswith('peak ')]
    assert len(peaks) == 3 and all(int(p.split()[1]) > 0 for p in peaks)


def test_profiler_lines_are_dropped_and_others_kept(capfd):
    """The line filter alone, on lines written straight to descriptor 2."""
    with dropped_profiler_lines():
        os.write(2, b'USDT:2026-12-07 09:11:37 3769:3769 SyncActivityProfilerHandler.cpp:52] '
                    b'profiler_start\n')
        os.write(2, b'USDT:2026-12-07 09:11:37 3769:3769 Other.cpp:1] something\n')
        os.write(2, b'a real error\n')
    assert capfd.readouterr().err.splitlines() == [
        'USDT:2026-12-07 09:11:37 3769:3769 Other.cpp:1] something', 'a real error']


def test_checkpoint_hook_drops_only_the_unused_file_client_lines(tmp_path, capsys, monkeypatch):
    """mmengine's CheckpointHook / Runner.save_checkpoint build a FileClient they do not use and
    it logs two deprecation lines; AtomicCheckpointHook drops exactly those, and only when no
    ``file_client_args`` were given (then the client would really be used)."""
    from mmengine.fileio import FileClient
    from mmengine.logging import MMLogger, print_log

    from mmsidetune.hooks.atomic_checkpoint_hook import _unused_file_client_quiet
    MMLogger.get_instance('quiet_test', log_level='INFO')
    # dropped first: mmengine's logger prints a warning it has printed before only once
    for args, expect_lines in ((None, False), (dict(backend='disk'), True)):
        monkeypatch.setattr(FileClient, '_instances', {})  # a new backend, as in a new process
        with _unused_file_client_quiet(args):
            FileClient.infer_client(None, str(tmp_path))
            print_log(f'another warning {args}', logger='current', level=30)
        out = capsys.readouterr().out
        assert ('"FileClient" will be deprecated' in out) is expect_lines, out
        assert ('"HardDiskBackend" is the alias' in out) is expect_lines, out
        assert f'another warning {args}' in out
