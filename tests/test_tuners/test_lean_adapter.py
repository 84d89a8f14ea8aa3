"""The lean dual low-rank adapter: same values and gradients as the plain modules, fewer bytes."""
import pytest
import torch
import torch.nn as nn

from mmsidetune.tuners.layers import DualLowRankAdapter, lean_dual_lowrank_adapter
from mmsidetune.cost import SavedTensorMeter

D, N, BR = 24, 2 * 11, 16  # width, tokens (2 x 11), B * r of the default adapter (2 x 8)


def _random_adapter(dtype=torch.float64, act=nn.GELU):
    torch.manual_seed(0)
    adapter = DualLowRankAdapter(D, act_layer=act).to(dtype)
    for p in adapter.parameters():  # non-zero everywhere, W_up and biases included
        nn.init.normal_(p, std=0.5)
    return adapter


def _grads(out, adapter, x, grad):
    inputs = list(adapter.parameters()) + ([x] if x.requires_grad else [])
    return torch.autograd.grad(out, inputs, grad)


@pytest.mark.parametrize('act', [nn.GELU, nn.ReLU])
@pytest.mark.parametrize('x_grad', [False, True])
def test_values_and_gradients_equal_plain_modules_float64(act, x_grad):
    adapter = _random_adapter(act=act)
    x = torch.randn(2, 11, D, dtype=torch.float64, requires_grad=x_grad)
    plain = adapter(x)
    lean = lean_dual_lowrank_adapter(adapter, x)
    assert torch.equal(plain, lean)
    grad = torch.randn_like(plain)
    for g_plain, g_lean in zip(_grads(plain, adapter, x, grad), _grads(lean, adapter, x, grad)):
        torch.testing.assert_close(g_lean, g_plain, rtol=1e-12, atol=1e-12)


def test_keeps_only_its_input():
    adapter = _random_adapter(torch.float32)
    x = torch.randn(2, 11, D)
    with SavedTensorMeter(exclude=adapter.parameters()) as meter:
        out = lean_dual_lowrank_adapter(adapter, x)  # the graph stays alive while counted
    assert meter.bytes == N * D * 4  # d floats per token (the issue allows d + 3 * B * r)
    with SavedTensorMeter(exclude=adapter.parameters()) as meter:
        out = adapter(x)
    assert meter.bytes >= N * (D + D // 2 + D // 2) * 4  # plain: input, GELU in and out, ...


def test_compact_input_halves_x_and_changes_only_q_down_gradient():
    adapter = _random_adapter(torch.float32)
    x = torch.randn(2, 11, D)
    with SavedTensorMeter(exclude=adapter.parameters()) as meter:
        compact = lean_dual_lowrank_adapter(adapter, x, torch.bfloat16)
    # x in bfloat16 (half of the x part) + Q_d x in float32 (B * r floats per token)
    assert meter.bytes == N * D * 2 + N * BR * 4
    exact = lean_dual_lowrank_adapter(adapter, x)
    assert torch.equal(exact, compact)  # the forward uses the exact x
    grad = torch.randn_like(exact)
    names = [n for n, _ in adapter.named_parameters()]
    for name, g_exact, g_compact in zip(names, _grads(exact, adapter, x, grad),
                                        _grads(compact, adapter, x, grad)):
        if name == 'down.Q':
            assert not torch.equal(g_exact, g_compact)
            atol = 2e-2 * g_exact.abs().max()
            torch.testing.assert_close(g_compact, g_exact, rtol=2e-2, atol=atol)
        else:
            assert torch.equal(g_exact, g_compact), name


def test_bfloat16_input_is_kept_as_is_and_computed_in_float32():
    adapter = _random_adapter(torch.float32)
    x = torch.randn(2, 11, D).bfloat16()
    with SavedTensorMeter(exclude=adapter.parameters()) as meter:
        out = lean_dual_lowrank_adapter(adapter, x, torch.bfloat16)
    assert meter.bytes == N * D * 2  # nothing rounded, nothing extra kept
    assert out.dtype == torch.float32
    assert torch.equal(out, adapter(x.float()))


def test_rejects_other_layers():
    adapter = _random_adapter()
    adapter.down = nn.Linear(D, D // 2).double()
    with pytest.raises(TypeError, match='DualLowRankLinear'):
        lean_dual_lowrank_adapter(adapter, torch.randn(3, D, dtype=torch.float64))
