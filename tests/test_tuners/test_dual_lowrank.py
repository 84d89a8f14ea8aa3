import pytest
import torch

from mmsidetune.tuners.layers import DualLowRankAdapter, DualLowRankLinear


def test_parameter_count_is_sum_of_low_rank_factors():
    layer = DualLowRankLinear(96, 48, rank=8, num_branches=2)
    # 2 branches x (P: 48x8 + K: 8x8 + Q: 8x96) + bias 48
    assert sum(p.numel() for p in layer.parameters()) == 2 * (48 * 8 + 64 + 8 * 96) + 48


def test_equals_dense_linear_with_summed_weight():
    torch.manual_seed(0)
    layer = DualLowRankLinear(12, 10, rank=3, num_branches=2)
    torch.nn.init.normal_(layer.bias)
    weight = sum(layer.P[b] @ layer.K[b] @ layer.Q[b] for b in range(2))
    x = torch.randn(4, 5, 12)
    torch.testing.assert_close(layer(x), x @ weight.T + layer.bias)


def test_adapter_outputs_exact_zero_at_init_but_learns():
    adapter = DualLowRankAdapter(64)
    x = torch.randn(2, 7, 64)
    out = adapter(x)
    assert torch.count_nonzero(out) == 0
    out.sum().backward()
    assert adapter.up.P.grad.abs().sum() > 0


@pytest.mark.parametrize('kwargs', [dict(in_features=0, out_features=4), dict(
    in_features=4, out_features=4, rank=0), dict(in_features=4, out_features=4, num_branches=0)])
def test_bad_sizes_raise(kwargs):
    with pytest.raises(ValueError):
        DualLowRankLinear(**kwargs)
