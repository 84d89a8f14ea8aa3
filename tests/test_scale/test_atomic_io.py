"""Atomic writes and the CPU distributed setup's refusals (in-process, fast)."""
import os

import pytest
from mmengine.config import Config
from mmengine.fileio import LocalBackend, get_file_backend

from mmsidetune.utils import AtomicLocalBackend, setup_cpu_distributed
from mmsidetune.utils.atomic_io import partial_files


def _fail_fsync(fd):
    raise OSError('disk gone')


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'iter_2.pth')
    backend = get_file_backend(path, backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'good checkpoint', path)
    monkeypatch.setattr(os, 'fsync', _fail_fsync)
    with pytest.raises(OSError, match='disk gone'):
        backend.put(b'half', path)
    assert open(path, 'rb').read() == b'good checkpoint'
    assert partial_files(str(tmp_path)) == []
    # control: mmengine's own backend opens the file in place, so a failed write destroys it
    with pytest.raises(TypeError):
        LocalBackend().put(object(), path)
    assert open(path, 'rb').read() == b''


def test_cpu_distributed_setup_refuses_nccl_and_slurm(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    with pytest.raises(ValueError, match='env_cfg.dist_cfg.backend=gloo'):
        setup_cpu_distributed(cfg)
    with pytest.raises(ValueError, match='--launcher pytorch'):
        setup_cpu_distributed(Config(dict(launcher='slurm')))
    assert setup_cpu_distributed(Config(dict(launcher='none'))) is False
