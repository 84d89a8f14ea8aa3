"""The memory meter on CUDA against ``torch.cuda.max_memory_allocated`` and the hand counts of
the CPU tests (tests/test_cost/test_memory.py), and the cost hook against bench on one step."""
import os.path as osp

import pytest
import torch
from cuda_tier import CUDA_TIER, cpu_test_module
from mmengine.config import Config

from mmsidetune.cost import (SavedTensorMeter, StepMemoryMeter, optimizer_state_bytes,
                             parameter_bytes, run_bench, set_img_size)

pytestmark = CUDA_TIER
memory = cpu_test_module('test_cost/test_memory.py')
hook = cpu_test_module('test_hooks/test_training_cost_hook.py')

#: bytes the caching allocator may add to a hand count: every block is rounded up to 512 bytes
#: (the loss and the gradient seed take one each) and a reduction may stage partial sums in a
#: small buffer. An a-priori bound, to be narrowed on the first GPU run (docs/gpu.md).
CUDA_ROUNDING = 64 * 1024


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize('name', sorted(memory.HAND_CASES))
def test_meter_on_cuda_equals_the_allocator_and_the_hand_count(name):
    case = memory.HAND_CASES[name]('cuda')
    case.step()  # optimizer state and cuBLAS workspaces exist before the measured step
    torch.cuda.synchronize()
    model_state = (parameter_bytes(case.model) + optimizer_state_bytes(case.optimizer)
                   + _bytes(p.grad for p in case.model.parameters() if p.grad is not None))
    # what else the device holds (workspaces): not part of the hand count
    unrelated = torch.cuda.memory_allocated() - model_state - _bytes(case.inputs)
    with StepMemoryMeter(case.model, case.optimizer) as meter:
        case.step()
    allocator_peak = torch.cuda.max_memory_allocated() - unrelated
    assert 0 <= allocator_peak - case.peak <= CUDA_ROUNDING, (allocator_peak, case.peak)
    # The meter keeps the model's state and what the step allocates; a batch already on the
    # device before the step is someone else's (bench and the hook move it inside the step).
    assert meter.result.peak_bytes == allocator_peak - _bytes(case.inputs)
    assert meter.result.source == 'cuda_allocator'
    assert meter.result.breakdown['parameters'] == parameter_bytes(case.model)
    if case.split is not None:
        assert meter.result.breakdown['optimizer'] == case.split['optimizer']
    if case.saved is not None:  # saved-for-backward bytes do not depend on the device
        with SavedTensorMeter(exclude=list(case.model.parameters())) as saved:
            case.step()
        assert saved.bytes == case.saved


def test_hook_peak_equals_bench_memory_on_cuda(demo_config, tmp_path):
    """The CPU test's setup on the GPU: the hook's iteration 1 and bench's memory step."""
    cfg = set_img_size(Config.fromfile(osp.join(osp.dirname(demo_config), hook.SEG_DEMO)),
                       hook.SEG_SIZE)
    rows = run_bench(cfg, ['e3va'], steps=1, warmup=1, batch_size=2, progress=False,
                     device='cuda')
    runner, train = hook._train(cfg, tmp_path, batch_size=2, max_iters=2, memory_start=1)
    assert next(runner.model.parameters()).is_cuda
    bench_mb = rows[0]['memory_breakdown_mb']
    for key in ('parameters', 'optimizer'):  # counted from the model: exactly equal
        assert train[1][f'mem_{key}_mb'] == pytest.approx(bench_mb[key], abs=1e-9), key
    # the rest is the allocator's peak; cuDNN may pick other workspaces in another process state
    assert train[1]['peak_mem_mb'] == pytest.approx(rows[0]['memory_mb'], rel=0.02)
