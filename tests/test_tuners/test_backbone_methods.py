"""One table over (backbone family x tuning method) on tiny random-init backbones.

For every method a family supports (``BackboneTuning().methods``): only the method's parameters
(and the family's output norms) train and all of them get gradients; the output equals the
frozen trunk's at initialisation (every method's init makes its branch zero); an adapter-only
file round-trips bitwise; E3VA's saved-for-backward bytes are below every in-stream method's.
"""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope

from mmsidetune.cost import SavedTensorMeter
from mmsidetune.tuners import BackboneTuning, TunedBackbone
from mmsidetune.utils import load_adapter_checkpoint, save_adapter_checkpoint

#: family -> (default scope, upstream backbone config, input (B, 3, H, W))
FAMILIES = {
    'swin': ('mmdet', dict(type='SwinTransformer', embed_dims=32, depths=(2, 2, 2, 2),
                           num_heads=(1, 2, 4, 8), window_size=7, drop_path_rate=0.1),
             (2, 3, 64, 96)),
    # zero_init_residual=False: mmdet's default zeroes every residual branch at random init,
    # which would leave the adapters reading zeros
    'resnet': ('mmdet', dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3),
                             zero_init_residual=False), (2, 3, 64, 64)),
    # mmseg's deep-stem ResNetV1d with BasicBlocks (the mmdet row has Bottlenecks)
    'resnet-mmseg': ('mmseg', dict(type='ResNetV1d', depth=18, out_indices=(0, 1, 2, 3),
                                   zero_init_residual=False), (2, 3, 64, 64)),
    'vit': ('mmseg', dict(type='VisionTransformer', img_size=(64, 64), patch_size=16,
                          embed_dims=32, num_layers=4, num_heads=2, mlp_ratio=2,
                          out_indices=(1, 3), final_norm=True, drop_path_rate=0.1),
            (2, 3, 64, 64)),
}
IN_STREAM = ('bitfit', 'adapter', 'lora', 'adaptformer', 'lorand', 'mona')


def _methods(family):
    scope, module, _ = FAMILIES[family]
    return BackboneTuning().methods(dict(backbone=dict(type='TunedBackbone', module=module)))


CASES = [(f, m) for f in FAMILIES for m in _methods(f)]


def _build(family, method, seed=0):
    scope, module, _ = FAMILIES[family]
    init_default_scope(scope)
    torch.manual_seed(seed)
    model = TunedBackbone(module=copy.deepcopy(module), method=method)
    model.init_weights()
    return model


def _input(family, seed=1):
    torch.manual_seed(seed)
    return torch.randn(FAMILIES[family][2])


def _loss(outs):
    return sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)


def test_every_family_has_the_methods_that_apply():
    assert _methods('swin') == ['full', 'frozen', 'partial-1', 'bitfit', 'adapter', 'lora',
                                'adaptformer', 'lorand', 'mona', 'e3va']
    # Mona needs a token grid without a class token (docs/methods/mona.md)
    assert _methods('vit') == [m for m in _methods('swin') if m != 'mona']
    # ResNet blocks have no linear layer (LoRA), no MLP (AdaptFormer) and no attention/MLP pair
    # (Mona): docs/backbones.md
    assert _methods('resnet') == ['full', 'frozen', 'partial-1', 'bitfit', 'adapter', 'lorand',
                                  'e3va']


@pytest.mark.parametrize('family,method', CASES)
def test_only_the_method_trains_and_all_of_it_gets_gradients(family, method):
    model = _build(family, method).train()
    trainable = {id(p) for p in model.trainable_parameters()}
    for p in model.parameters():
        assert p.requires_grad == (id(p) in trainable)
    if method == 'frozen':
        assert not trainable
        assert not any(o.requires_grad for o in model(_input(family)))
        return
    if method != 'full':  # the frozen trunk stays in eval mode (Partial-1: but its last block)
        trained = {id(m) for b in model.family.blocks()[-1:] for m in b.module.modules()}
        fixed_bn = getattr(model, 'norm_eval', False)  # upstream norm_eval holds
        for m in (m for c in model.family.trunk() for m in c.modules()):
            bn = isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            assert m.training == (method == 'partial-1' and id(m) in trained
                                  and not (bn and fixed_bn)), type(m).__name__
        assert not any(c.training for c in model.family.trunk())
        layers = model.method.layers_name
        assert not layers or getattr(model, layers).training
    _loss(model(_input(family))).backward()
    for name, p in model.named_parameters():
        if id(p) in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0 or _zero_grad_ok(name), name
        else:
            assert p.grad is None, name


def _zero_grad_ok(name):
    # at init a zero up-projection blocks the gradient of the layers before it (as in every
    # zero-initialised adapter): down-projections and LoRA's A get exactly zero
    # (Mona: everything before project2)
    return any(k in name for k in ('.down.', '.A', '.Q', '.K', 'down.P', 'down.bias',
                                   '.project1.', '.adapter_conv.', '.norm.', '.gamma'))


@pytest.mark.parametrize('family,method', CASES)
def test_output_equals_the_frozen_trunk_at_initialisation(family, method):
    ref = _build(family, 'frozen').eval()
    model = _build(family, method).eval()
    model.load_state_dict(ref.state_dict(), strict=False)
    x = _input(family)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        if method in ('full', 'partial-1'):
            # trainable weights (Partial-1: the last layer's) take nn.MultiheadAttention's slow
            # path (ViT), the frozen trunk its fused inference path: the same function, rounded
            # differently
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(a, b)


@pytest.mark.parametrize('family,method', [c for c in CASES if c[1] not in ('full', 'frozen')])
def test_adapter_only_file_round_trips_bitwise(tmp_path, family, method):
    model = _build(family, method, seed=0)
    for p in model.parameters():  # trained values, not the init
        if p.requires_grad:
            p.data.normal_()
    path = str(tmp_path / 'adapter.pth')
    meta = save_adapter_checkpoint(model, path)
    assert meta['tuning_methods'] == {'.': f'{type(model).__name__}({method})'}
    fresh = _build(family, method, seed=0)
    load_adapter_checkpoint(fresh, path)
    own, loaded = model.state_dict(), fresh.state_dict()
    assert own.keys() == loaded.keys()
    assert all(torch.equal(own[k], loaded[k]) for k in own)


def _saved_bytes(model, x):
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        outs = model(x)  # the graph stays alive while the meter reads it
    del outs
    return meter.bytes


@pytest.mark.parametrize('family', list(FAMILIES))
def test_e3va_saves_less_for_backward_than_every_in_stream_method(family):
    """Paper, COCO Swin-B: E3VA 7639 MB, lowest in-stream (LoRA) 11975 MB, 0.64x; frozen
    stores nothing (in-stream methods may store more than full: Mona's adapters add maps)."""
    x = _input(family)
    saved = {m: _saved_bytes(_build(family, m).train(), x) for m in _methods(family)
             if m in IN_STREAM + ('e3va', 'frozen')}
    in_stream = [saved[m] for m in saved if m in IN_STREAM]
    assert saved['frozen'] == 0 and in_stream
    assert saved['e3va'] < min(in_stream), saved
