"""The ResNet family (mmsidetune/tuners/families/resnet.py): E3VA's highway against its
recurrence and the family's own cases (every method x family:
tests/test_tuners/test_backbone_methods.py).

Tiny random-init mmdet/mmseg ResNets (Bottleneck and BasicBlock, plain and deep stem, projection
shortcuts with and without average pooling) whose batch norms get random statistics and affine
parameters, so that no residual branch is zero and no norm is the identity.
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS, init_default_scope

import mmsidetune  # noqa: F401  (registers the families and methods)
from mmsidetune.cost import SavedTensorMeter
from mmsidetune.tuners import TunedBackbone
from mmsidetune.tuners.core import BackboneTuning
from mmsidetune.tuners.families import ResNetFamily, frozen_affine, masked_relu

# (scope, type, options): 64x64 inputs give maps of 16, 8, 4, 2 pixels.
CASES = {
    'mmdet-r50': ('mmdet', 'ResNet', dict(depth=50, base_channels=8)),
    'mmdet-r18': ('mmdet', 'ResNet', dict(depth=18, base_channels=8)),
    'mmseg-r50-v1c': ('mmseg', 'ResNetV1c', dict(depth=50, base_channels=8)),
    'mmseg-r18-v1d': ('mmseg', 'ResNetV1d', dict(depth=18, base_channels=8)),
    'mmdet-r50-plugin': ('mmdet', 'ResNet', dict(
        depth=50, base_channels=8,
        plugins=[dict(cfg=dict(type='ContextBlock', ratio=0.25), position='after_conv3')])),
}
BATCH, SIZE = 2, 64


def _upstream(case: str) -> nn.Module:
    """A random ResNet, frozen (``requires_grad=False``) and in eval mode."""
    scope, kind, options = CASES[case]
    init_default_scope(scope)
    torch.manual_seed(0)
    model = MODELS.build(dict(type=kind, zero_init_residual=False, **options))
    model.init_weights()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    model.requires_grad_(False)
    return model


def _image(dtype=torch.float32):
    return torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1),
                       dtype=dtype)


def _tuned(upstream: nn.Module, method, **options) -> TunedBackbone:
    module = copy.deepcopy(upstream)
    if method == 'Full':
        module.requires_grad_(True)
    return TunedBackbone(module=module, method=dict(type=method, **options)).train()


def _redraw_up(model: TunedBackbone) -> None:
    """Give every adapter a non-zero up-projection (``P`` of ``W_up``; ``up`` of a
    ``BottleneckAdapter``)."""
    torch.manual_seed(2)
    for m in model.modules():
        up = getattr(m, 'up', None)
        if up is None:
            continue
        for p in ([up.P] if hasattr(up, 'P') else [up.weight, up.bias]):
            nn.init.normal_(p, std=0.1)


@pytest.mark.parametrize('case', list(CASES))
def test_e3va_step0_is_bitwise_the_frozen_trunk(case):
    upstream = _upstream(case)
    with torch.no_grad():
        expected = upstream(_image())
    for options in (dict(), dict(recompute_trunk=True)):
        outs = _tuned(upstream, 'E3VA', rank=4, **options)(_image())
        assert len(outs) == len(expected) == 4
        for out, ref in zip(outs, expected):
            assert out.requires_grad
            assert torch.equal(out, ref)


def _branch(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The residual branch ``f`` of an upstream block, from its sub-modules (no hooks)."""
    if hasattr(block, 'conv3'):
        f = F.relu(block.norm1(block.conv1(x)))
        f = F.relu(block.norm2(block.conv2(f)))
        f = block.norm3(block.conv3(f))
        for name in getattr(block, 'after_conv3_plugin_names', []):
            f = getattr(block, name)(f)
        return f
    return block.norm2(block.conv2(F.relu(block.norm1(block.conv1(x)))))


def _reference_highway(model: TunedBackbone, img: torch.Tensor):
    """E3VA's recurrence written out: ``x_{l+1} = relu(f_l + s_l(x_l))`` (the trunk) and
    ``h_{l+1} = relu(f_l + s_l(h_l) + A_l(f_l))`` from ``h_0 = x_0`` (the highway), with the
    upstream modules and the plain adapter modules."""
    m = model
    x = m.stem(img) if m.deep_stem else F.relu(m.norm1(m.conv1(img)))
    x = h = m.maxpool(x)
    outs = []
    for i, name in enumerate(m.res_layers):
        for j, block in enumerate(getattr(m, name)):
            f = _branch(block, x)
            s = (lambda t: t) if block.downsample is None else block.downsample
            x = F.relu(f + s(x))
            h = F.relu(f + s(h) + model.highway[i][j]['res'](f))
        if i in m.out_indices:
            outs.append(h)
    return outs


@pytest.mark.parametrize('case', ['mmdet-r50', 'mmseg-r18-v1d', 'mmdet-r50-plugin'])
def test_e3va_gradients_match_the_highway_recurrence_in_float64(case):
    model = _tuned(_upstream(case), 'E3VA', rank=4).double()
    _redraw_up(model)
    img = _image(torch.float64)
    weights = [torch.randn(o.shape, dtype=torch.float64) for o in model(img)]
    params = list(model.highway.parameters())

    def loss(outs):
        return sum((o * w).sum() for o, w in zip(outs, weights))

    outs = model(img)
    ref = _reference_highway(model, img)
    for out, r in zip(outs, ref):
        assert torch.allclose(out, r, rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad(loss(outs), params)
    want = torch.autograd.grad(loss(ref), params)
    for name_p, g, w in zip(model.highway.named_parameters(), got, want):
        assert w.abs().sum() > 0, name_p[0]
        assert torch.allclose(g, w, rtol=1e-9, atol=1e-12), name_p[0]


def test_highway_pieces_pass_gradcheck():
    down = _upstream('mmseg-r18-v1d').layer2[0].downsample.double()  # avg pool, conv, BN
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: frozen_affine(down, t), (x, ))
    assert torch.equal(frozen_affine(down, x), down(x))
    y = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: masked_relu(t * 1.0), (y, ))
    assert torch.equal(masked_relu(y * 1.0), torch.relu(y))


def test_highway_pieces_keep_at_most_a_mask_for_backward():
    down = _upstream('mmdet-r50').layer2[0].downsample
    x = torch.randn(2, 32, 16, 16, requires_grad=True)
    with SavedTensorMeter(exclude=down.parameters()) as meter:
        y = frozen_affine(down, x)  # counted on exit, with the graph alive
    assert y.grad_fn is not None and meter.bytes == 0
    with SavedTensorMeter() as meter:
        y = masked_relu(x * 1.0)
    assert meter.bytes == x.numel()  # one bool per element


def test_frozen_affine_refuses_non_affine_or_training_modules():
    with pytest.raises(TypeError, match='not affine'):
        frozen_affine(nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()), torch.randn(1, 2, 3, 3))
    with pytest.raises(RuntimeError, match='training mode'):
        frozen_affine(nn.BatchNorm2d(2).train(), torch.randn(1, 2, 3, 3))


def _saved_bytes(model: TunedBackbone) -> int:
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        outs = model(_image())
        loss = sum(o.sum() for o in outs)  # sum's backward keeps no tensor
    _ = (outs, loss)  # the graph is alive when the meter counts (on exit)
    return meter.bytes


def test_e3va_saves_one_map_and_one_mask_per_block():
    """Hand count: per block the adapter's input tap ``f`` (float32) and the highway ReLU's
    mask (bool) of the block's output shape; the projection shortcuts keep nothing."""
    model = _tuned(_upstream('mmdet-r50'), 'E3VA')
    # ResNet-50 widths 4 * 8 * 2**i = 32, 64, 128, 256 on 16, 8, 4, 2 pixel maps; 3, 4, 6, 3 blocks
    maps = sum(n * 32 * 2**i * (16 // 2**i)**2 for i, n in enumerate((3, 4, 6, 3)))
    assert _saved_bytes(model) == BATCH * maps * (4 + 1)


def test_methods_that_do_not_apply_say_why():
    upstream = _upstream('mmdet-r18')
    with pytest.raises(ValueError, match='no linear layers'):
        TunedBackbone(module=copy.deepcopy(upstream), method='lora')
    with pytest.raises(ValueError, match='no MLP'):
        TunedBackbone(module=copy.deepcopy(upstream), method='adaptformer')
    cfg = dict(backbone=dict(type='ResNet', depth=50))
    assert BackboneTuning().methods(cfg) == ['full', 'frozen', 'partial-1', 'bitfit', 'adapter',
                                             'lorand', 'e3va']


def test_frozen_trunk_methods_refuse_frozen_stages():
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match='frozen_stages=1'):
        TunedBackbone(module=dict(type='ResNet', depth=18, frozen_stages=1), method='e3va')


@pytest.mark.parametrize('scope,kind,module', [
    ('mmdet', 'ResNet', 'mmdet.models.backbones.resnet'),
    ('mmseg', 'ResNet', 'mmseg.models.backbones.resnet'),
    ('mmseg', 'ResNetV1c', 'mmseg.models.backbones.resnet'),
    ('mmdet', 'mmseg.ResNetV1d', 'mmseg.models.backbones.resnet'),
])
def test_builds_the_scope_s_resnet(scope, kind, module):
    init_default_scope(scope)
    model = MODELS.build(dict(type='TunedBackbone', module=dict(type=kind, depth=18),
                              method=dict(type='E3VA', rank=4)))
    assert type(model)._upstream.__module__ == module
    assert isinstance(model.family, ResNetFamily)
    assert kind in ResNetFamily.upstream_types


def test_other_resnet_like_backbones_are_refused():
    init_default_scope('mmdet')
    with pytest.raises(TypeError, match='not a backbone family'):
        TunedBackbone(module=dict(type='ResNeXt', depth=50, groups=32, base_width=4),
                      method='e3va')
