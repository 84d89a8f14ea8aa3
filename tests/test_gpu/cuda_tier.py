"""Shared by the CUDA test tier (docs/gpu.md): its marks, and the CPU tests' cases to reuse."""
import importlib.util
import os.path as osp
import sys

import pytest
import torch

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(TESTS)

#: ``pytestmark`` of every module of the tier: marked ``cuda``, skipped with the reason without CUDA
CUDA_TIER = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason='needs a CUDA device (the CUDA tier: tools/gpu/gpu_check.sh, '
                       'docs/gpu.md)'),
]


def cpu_test_module(relpath: str):
    """The CPU test module ``tests/<relpath>``, imported under a name of its own, so that the
    tier runs the CPU tests' hand-counted cases and references instead of copies."""
    name = 'cpu_cases_' + osp.splitext(relpath)[0].replace('/', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, osp.join(TESTS, relpath))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a - b|| / ||b||`` in float64 on the CPU (a and b of any device and dtype)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm()).item()
