"""The CUDA tier (docs/gpu.md): float32 really float32, and the allocator's summary on request."""
import os

import pytest
import torch


@pytest.fixture(autouse=True)
def no_tf32():
    """Tolerances below are float32's: TF32 (cuDNN convolutions use it by default) is off."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def pytest_sessionfinish(session, exitstatus):
    """``MMSIDETUNE_CUDA_MEMORY_SUMMARY=FILE``: ``torch.cuda.memory_summary()`` of this process
    at the end of the tier (tools/gpu/gpu_check.sh sets it)."""
    path = os.environ.get('MMSIDETUNE_CUDA_MEMORY_SUMMARY')
    if path and torch.cuda.is_available() and torch.cuda.is_initialized():
        with open(path, 'w') as f:
            f.write(torch.cuda.memory_summary())
