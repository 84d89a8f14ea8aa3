"""StepMemoryMeter on CPU against peaks computed by hand, and pins of the private profiler API.

Sizes are MiB-sized float32 tensors (N = 2**18 scalars = 1 MiB). Besides the tensors named in each
hand count, the profile contains the loss and the gradient seed (two float32 scalars, 8 bytes):
"within ROUNDING bytes" below allows for them and nothing else.
"""
import functools

import pytest
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from mmsidetune.cost import (CATEGORIES, PROFILER_CATEGORY_MAP, SavedTensorMeter, StepMemoryMeter,
                             parameter_bytes)

MiB = 2**20
N = MiB // 4  # float32 scalars in one MiB
ROUNDING = 64  # bytes: the scalar loss and gradient seed


def _run_twice(step, meter_kwargs=None, with_saved=False, exclude=()):
    """Run ``step`` twice (the second time measured, optimizer state already made)."""
    step()
    saved = SavedTensorMeter(exclude=exclude) if with_saved else None
    with StepMemoryMeter(**(meter_kwargs or dict(device='cpu'))) as meter:
        if saved is None:
            step()
        else:
            with saved:
                step()
    return meter.result, saved


class HandCase:
    """One training step whose peak (and saved-for-backward bytes) is counted by hand; the CUDA
    tier (tests/test_gpu) runs the same cases on a GPU.

    Attributes: ``step()`` one training step; ``model`` an ``nn.Module`` holding the trained
    parameters; ``optimizer``; ``inputs`` the tensors the step reads that are neither parameters
    nor optimizer state; ``peak`` / ``saved`` the hand counts in bytes (``saved`` None: not
    counted); ``split`` the hand split by category (None: not counted).
    """

    def __init__(self, step, model, optimizer, inputs, peak, saved=None, split=None):
        self.step, self.model, self.optimizer, self.inputs = step, model, optimizer, inputs
        self.peak, self.saved, self.split = peak, saved, split


def mlp_case(device='cpu'):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 1024, bias=False), nn.ReLU(),
                          nn.Linear(1024, 256, bias=False)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    x = torch.randn(64, 256, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).sum().backward()
        opt.step()  # momentum buffer and parameter updated in place: no new bytes

    weight = 1024 * 256 * 4  # each of the two weights: 1 MiB
    # The peak is in the first layer's backward: parameters (2 weights), momentum (2), x, the
    # second layer's weight gradient, the first layer's weight gradient being written, and the
    # ReLU's input gradient dL/dh (64 x 1024) it reads; ReLU's output r was released with its
    # node, y and h were freed in forward.
    hand = dict(parameters=2 * weight, gradients=2 * weight, optimizer=2 * weight,
                activations=64 * 256 * 4, temporaries=64 * 1024 * 4)
    return HandCase(step, model, opt, [x], sum(hand.values()), split=hand)


def _weight_and_input(device='cpu'):
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(N, device=device))
    x = torch.randn(N, device=device)
    opt = torch.optim.SGD([w], lr=0.1, foreach=False)  # in place, no state
    holder = nn.Module()
    holder.w = w
    return w, x, opt, holder


def freed_graph_case(device='cpu'):
    w, x, opt, holder = _weight_and_input(device)

    def step():
        opt.zero_grad(set_to_none=True)
        for _ in range(4):  # graphs built and freed during forward
            tmp = (x * w).exp()
            del tmp
        (x * w).sum().backward()
        opt.step()

    # peak inside exp of a freed graph: w, x, x * w and its exp (1 MiB each); at backward only
    # the last graph is alive: it holds x (for w's gradient), nothing else
    return HandCase(step, holder, opt, [x], 4 * MiB, saved=MiB)


def saved_twice_case(device='cpu'):
    w, x, opt, holder = _weight_and_input(device)

    def step():
        opt.zero_grad(set_to_none=True)
        h = x * w
        (h.sin() + h.cos()).sum().backward()  # sin and cos both save h
        opt.step()

    # saved: h once, and x (saved by x * w for w's gradient); peak at the add: w, x, h, sin(h),
    # cos(h), their sum; backward stays below it
    return HandCase(step, holder, opt, [x], 6 * MiB, saved=2 * MiB)


#: (checkpointed segments, hand peak, hand saved bytes) of :func:`checkpoint_case`
CHECKPOINT_COUNTS = [
    # no checkpoint: x, h, s1..s5 saved (7), plus w; sin6's backward adds cos(s5) and its product
    (0, 10 * MiB, 7 * MiB),
    # one segment sin^3 on h, then plain sin^3: x, h, and y1 = s3, s4, s5 (the inputs the plain
    # sins save); the peak is in the plain part's backward: w, x, h, s3, s4, s5, cos, product
    (1, 8 * MiB, 5 * MiB),
    # two checkpointed segments: only x, h and y1 are saved; the second segment's backward
    # recomputes s4, s5 and adds cos(s5) and the product: w, x, h, y1, s4, s5, cos, product
    (2, 8 * MiB, 3 * MiB),
]


def checkpoint_case(segments, device='cpu'):
    w, x, opt, holder = _weight_and_input(device)

    def sin3(t):
        return t.sin().sin().sin()

    def segment(t, i):
        if i < segments:  # torch.utils.checkpoint keeps only the segment's input
            return checkpoint(sin3, t, use_reentrant=False, preserve_rng_state=False)
        return sin3(t)

    def step():
        opt.zero_grad(set_to_none=True)
        segment(segment(x * w, 0), 1).sum().backward()
        opt.step()

    _, peak, saved = next(c for c in CHECKPOINT_COUNTS if c[0] == segments)
    return HandCase(step, holder, opt, [x], peak, saved=saved)


#: every hand-counted case by name: ``HAND_CASES[name](device)`` -> :class:`HandCase`
HAND_CASES = dict(mlp_sgd_momentum=mlp_case, freed_graph=freed_graph_case,
                  saved_twice=saved_twice_case,
                  **{f'checkpoint_{s}': functools.partial(checkpoint_case, s)
                     for s, _, _ in CHECKPOINT_COUNTS})


def test_mlp_forward_backward_sgd_step_peak_by_hand():
    case = mlp_case()
    result, _ = _run_twice(case.step, dict(model=case.model, optimizer=case.optimizer))
    hand = case.split
    assert 0 <= result.peak_bytes - case.peak <= ROUNDING
    for key in CATEGORIES:
        assert 0 <= result.breakdown[key] - hand[key] <= ROUNDING, key
    assert result.peak_bytes == sum(result.breakdown.values())
    assert result.source == 'cpu_profiler' and result.device == 'cpu'
    assert parameter_bytes(case.model) == hand['parameters']


def test_graph_freed_during_forward_counts_only_while_alive():
    case = freed_graph_case()
    for with_saved in (False, True):  # the saved-tensor meter must not change the peak
        result, saved = _run_twice(case.step, with_saved=with_saved, exclude=[case.model.w])
        assert 0 <= result.peak_bytes - case.peak <= ROUNDING
    assert saved.bytes == case.saved


def test_one_tensor_saved_by_two_ops_counts_once():
    case = saved_twice_case()
    result, saved = _run_twice(case.step, with_saved=True, exclude=[case.model.w])
    assert saved.bytes == case.saved
    assert 0 <= result.peak_bytes - case.peak <= ROUNDING


@pytest.mark.parametrize('segments', [s for s, _, _ in CHECKPOINT_COUNTS])
def test_checkpointed_segments_peak_by_hand(segments):
    case = checkpoint_case(segments)
    result, saved = _run_twice(case.step, with_saved=True, exclude=[case.model.w])
    assert saved.bytes == case.saved
    assert 0 <= result.peak_bytes - case.peak <= ROUNDING


def test_saved_tensor_meter_keeps_gradients_bitwise():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4), nn.Softmax(-1))
    x = torch.randn(5, 8)
    model(x).pow(2).sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    with SavedTensorMeter(exclude=model.parameters()):
        model(x).pow(2).sum().backward()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), expected))


def test_meter_misuse_and_devices():
    meter = StepMemoryMeter(device='cpu')
    with pytest.raises(RuntimeError, match='without start'):
        meter.stop()
    with pytest.raises(ValueError, match='CPU or CUDA'):
        StepMemoryMeter(device='meta')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA'):
            StepMemoryMeter(device='cuda')


def test_untouched_parameters_are_counted():
    """A parameter the step never uses is live all the same: it is added to ``parameters``."""
    w, x, opt, model = _weight_and_input()
    model.unused = nn.Parameter(torch.zeros(N))

    def step():
        opt.zero_grad(set_to_none=True)
        (x * w).sum().backward()
        opt.step()

    result, _ = _run_twice(step, dict(model=model))
    assert result.breakdown['parameters'] == 2 * MiB


def test_private_profiler_api_pinned():
    """What StepMemoryMeter relies on in torch.profiler._memory_profiler (a private module)."""
    from torch.profiler import _memory_profiler as mp
    assert {c.name for c in mp.Category} | {None} == set(PROFILER_CATEGORY_MAP)
    assert set(PROFILER_CATEGORY_MAP.values()) == set(CATEGORIES)
    assert {a.name for a in mp.Action} == {'PREEXISTING', 'CREATE', 'INCREMENT_VERSION',
                                           'DESTROY'}
    from torch.profiler import ProfilerActivity, profile
    x = torch.randn(N, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        x.exp().sum().backward()
    memory_profile = prof._memory_profile()
    events = list(memory_profile.timeline)
    t, action, (key, version), numbytes = events[0]
    assert isinstance(action, mp.Action) and isinstance(numbytes, int)
    assert key.device == torch.device('cpu') and isinstance(version, int)
    assert hasattr(memory_profile._categories, 'get')


def test_cuda_path_reads_the_models_device_and_subtracts_other_tensors(monkeypatch):
    """No GPU here: torch.cuda's counters are replaced by fakes that record the device asked."""
    calls = []
    fake = dict(allocated=0, peak=0)

    def record(name, value=None):
        def _fn(device=None):
            calls.append((name, str(device)))
            return fake.get(value) if value else None
        return _fn

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'synchronize', record('synchronize'))
    monkeypatch.setattr(torch.cuda, 'reset_peak_memory_stats', record('reset'))
    monkeypatch.setattr(torch.cuda, 'memory_allocated', record('allocated', 'allocated'))
    monkeypatch.setattr(torch.cuda, 'max_memory_allocated', record('max', 'peak'))
    model = nn.Linear(1024, 256)  # 1 MiB + 1 KiB of parameters, all trainable
    params = parameter_bytes(model)
    opt = torch.optim.AdamW(model.parameters())
    meter = StepMemoryMeter(model, opt, device='cuda:1')
    # 30 MiB of another model share the device, plus this model's parameters
    fake['allocated'] = 30 * MiB + params
    meter.start()
    fake['peak'] = 30 * MiB + params + 5 * MiB  # the step's peak: parameters + 5 MiB
    result = meter.stop()
    assert {device for _, device in calls} == {'cuda:1'}
    assert [name for name, _ in calls] == ['synchronize', 'allocated', 'reset', 'synchronize',
                                          'max']
    assert result.peak_bytes == params + 5 * MiB
    assert result.breakdown == dict(parameters=params, gradients=params, optimizer=0,
                                    activations=5 * MiB - params, temporaries=0)
    assert result.source == 'cuda_allocator' and result.device == 'cuda:1'
