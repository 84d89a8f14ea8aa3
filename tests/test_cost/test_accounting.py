import pytest
import torch
import torch.nn as nn

from mmsidetune.cost import (SavedTensorMeter, count_parameters, cpu_training_bytes,
                             gradient_bytes, optimizer_state_bytes, parameter_bytes, unwrap_model)


def test_saved_storage_counted_once():
    x = torch.randn(100, requires_grad=True)
    with SavedTensorMeter() as meter:
        y = x * x  # saves x twice (self and other): one storage
    assert meter.num_tensors == 2
    assert meter.bytes == 100 * 4
    y.sum().backward()


def test_parameters_excluded_and_no_grad_stores_nothing():
    layer = nn.Linear(8, 16)
    x = torch.randn(4, 8, requires_grad=True)
    with SavedTensorMeter(exclude=layer.parameters()) as meter:
        y = layer(x)
    assert meter.bytes == x.numel() * 4  # the input, not the weight
    del y
    with SavedTensorMeter(exclude=layer.parameters()) as meter:
        layer(x * 2)  # graph and its saved input freed at once: nothing is held for backward
    assert meter.bytes == 0
    with SavedTensorMeter() as meter, torch.no_grad():
        layer(x)
    assert meter.bytes == 0


def test_parameter_gradient_and_adamw_state_bytes():
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2))
    model[0].requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    assert optimizer_state_bytes(opt) == 0  # AdamW allocates its moments lazily
    model(torch.randn(3, 10)).sum().backward()
    opt.step()
    trainable_bytes = 22 * 4
    assert parameter_bytes(model) == (110 + 22) * 4
    assert gradient_bytes(model) == trainable_bytes
    # exp_avg + exp_avg_sq per trainable parameter (+ a scalar step per parameter tensor)
    assert optimizer_state_bytes(opt) == 2 * trainable_bytes + 2 * 4
    assert cpu_training_bytes(model, opt, saved_bytes=100) == \
        100 + (110 + 22) * 4 + trainable_bytes + 2 * trainable_bytes + 2 * 4


def test_count_parameters_with_backbone():
    model = nn.Module()
    model.backbone = nn.Linear(10, 10)
    model.head = nn.Linear(10, 2)
    model.backbone.weight.requires_grad_(False)
    c = count_parameters(model)
    assert (c.total, c.trainable, c.backbone_total, c.backbone_trainable) == (132, 32, 110, 10)
    assert abs(c.backbone_trainable_pct - 100 * 10 / 110) < 1e-9
    assert (c.tuning, c.tuning_total, c.tuning_pct) == (10, 110, c.backbone_trainable_pct)


def test_unwrap_model_only_unwraps_model_wrappers():
    from mmengine.model import MMDistributedDataParallel  # noqa: F401  (registers DDP wrappers)
    inner = nn.Linear(2, 2)

    class Holder(nn.Module):  # has a `.module` but is not a wrapper: must not be unwrapped
        def __init__(self):
            super().__init__()
            self.module = inner

    holder = Holder()
    assert unwrap_model(holder) is holder and unwrap_model(inner) is inner


def test_saved_bytes_are_those_alive_when_backward_begins():
    """Storages freed during forward are not counted, and a reused address is not skipped."""
    w = torch.randn(1000, requires_grad=True)
    with SavedTensorMeter(exclude=[w]) as meter:
        for _ in range(5):
            (w * torch.randn(1000)).sum()  # each graph (and its saved 4000 bytes) freed at once
        a, b = torch.randn(1000), torch.randn(1000)
        loss = (w * a).sum() + (w * b).sum()  # two live saved inputs, whatever their addresses
        loss.backward()
    assert meter.bytes == 2 * 1000 * 4


def test_tuning_share_asked_from_the_model():
    class Side(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(10, 10)
            self.side = nn.Linear(10, 2)
            self.backbone.requires_grad_(False)

        def tuning_share(self):
            return dict(tuned=self.side.parameters(), total=self.parameters(),
                        convention='side adapters / all parameters')

    c = count_parameters(Side())
    assert (c.tuning, c.tuning_total) == (22, 132)
    assert c.tuning_convention == 'side adapters / all parameters'
    assert abs(c.tuning_pct - 100 * 22 / 132) < 1e-9

    class Bad(Side):
        def tuning_share(self):
            return dict(tuned=[])

    with pytest.raises(ValueError, match='tuning_share'):
        count_parameters(Bad())
