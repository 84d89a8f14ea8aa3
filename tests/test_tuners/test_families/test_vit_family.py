"""The ViT family (mmsidetune/tuners/families/vit.py): E3VA's highway against its recurrence and
the family's own cases (every method x family: tests/test_tuners/test_backbone_methods.py).

Tiny random-init mmseg ``VisionTransformer``s (4 layers, 32 channels, 8-pixel patches) on 40x48
images, which are not the 32x32 ``img_size``: the position embedding is interpolated as well.
"""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS, init_default_scope

import mmsidetune  # noqa: F401  (registers the families and methods)
from mmsidetune.cost import SavedTensorMeter
from mmsidetune.tuners import TunedBackbone
from mmsidetune.tuners.core import BackboneTuning
from mmsidetune.tuners.families import ViTFamily

TINY = dict(img_size=32, patch_size=8, embed_dims=32, num_layers=4, num_heads=2,
            out_indices=(1, 3))
CASES = {
    'plain': dict(),
    'all-outputs': dict(final_norm=True, pre_norm=True, out_origin=True, output_cls_token=True,
                        drop_path_rate=0.1, drop_rate=0.1),
    'no-cls-token': dict(with_cls_token=False, patch_norm=True),
}
BATCH, H, W = 2, 40, 48


def _upstream(case: str = 'plain', **overrides) -> nn.Module:
    """A random ViT, frozen (``requires_grad=False``) and in eval mode."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(dict(type='VisionTransformer', **{**TINY, **CASES[case], **overrides}))
    model.init_weights()
    for name, p in model.named_parameters():  # no zero biases or tokens
        if name.endswith('bias') or name in ('cls_token', 'pos_embed'):
            p.data.normal_(0.0, 0.1)
    model.eval()
    model.requires_grad_(False)
    return model


def _image(dtype=torch.float32):
    return torch.randn(BATCH, 3, H, W, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _tuned(upstream: nn.Module, method: str, **options) -> TunedBackbone:
    module = copy.deepcopy(upstream)
    if method == 'Full':
        module.requires_grad_(True)
    if method == 'LoRA':
        options.setdefault('rank', 4)
    return TunedBackbone(module=module, method=dict(type=method, **options)).train()


def _tensors(outs):
    """The tensors of a ViT output tuple (``[map, cls_token]`` pairs flattened)."""
    return [t for o in outs for t in (o if isinstance(o, (list, tuple)) else [o])]


def _redraw_up(model: TunedBackbone) -> None:
    """Give every adapter a non-zero up-projection (``W_up``'s ``P``, a ``BottleneckAdapter``'s
    ``up``, LoRA's ``B``)."""
    torch.manual_seed(2)
    for m in model.modules():
        up = getattr(m, 'up', None)
        params = ([up.P] if hasattr(up, 'P') else [up.weight, up.bias]) if up is not None else []
        params += [m.B] if isinstance(getattr(m, 'B', None), nn.Parameter) else []
        for p in params:
            nn.init.normal_(p, std=0.1)


@pytest.mark.parametrize('case', list(CASES))
def test_e3va_step0_is_bitwise_the_frozen_trunk(case):
    upstream = _upstream(case)
    with torch.no_grad():
        expected = _tensors(upstream(_image()))
    for options in (dict(), dict(recompute_trunk='input')):
        outs = _tensors(_tuned(upstream, 'E3VA', rank=4, **options)(_image()))
        assert len(outs) == len(expected)
        for out, ref in zip(outs, expected):
            assert torch.equal(out, ref)


def _reference_highway(model: TunedBackbone, img: torch.Tensor):
    """E3VA's recurrence written out with the upstream modules and the plain adapters:
    ``x_{l+1} = x_l + a_l + m_l`` (the trunk, branches computed with a zero identity) and
    ``h_{l+1} = h_l + a_l + m_l + A_l(a_l) + M_l(m_l)`` from ``h_0 = x_0``."""
    m = model
    x, hw = m.patch_embed(img)
    x = torch.cat((m.cls_token.expand(img.shape[0], -1, -1), x), dim=1)
    x = m._pos_embeding(x, hw, m.pos_embed)
    x = x if m.with_cls_token else x[:, 1:]
    h = x = m.pre_ln(x) if m.pre_norm else x
    outs = []
    for i, layer in enumerate(m.layers):
        zero = torch.zeros_like(x)
        a = layer.attn(layer.norm1(x), identity=zero)
        f = layer.ffn(layer.norm2(x + a), identity=zero)
        x = x + a + f
        adapters = model.highway[i][0]
        h = h + a + f + adapters['attn'](a) + adapters['mlp'](f)
        if i in m.out_indices:
            y = m.norm1(h) if m.final_norm and i == len(m.layers) - 1 else h
            y = y[:, 1:] if m.with_cls_token else y
            outs.append(y.reshape(img.shape[0], *hw, -1).permute(0, 3, 1, 2))
    return outs


@pytest.mark.parametrize('case', ['plain', 'no-cls-token'])
def test_e3va_gradients_match_the_highway_recurrence_in_float64(case):
    model = _tuned(_upstream(case, final_norm=True), 'E3VA', rank=4).double()
    _redraw_up(model)
    img = _image(torch.float64)
    outs = model(img)
    ref = _reference_highway(model, img)
    weights = [torch.randn(o.shape, dtype=torch.float64) for o in outs]
    params = [p for p in model.parameters() if p.requires_grad]  # adapters and final norm

    def loss(outs):
        return sum((o * w).sum() for o, w in zip(outs, weights))

    for out, r in zip(outs, ref):
        assert torch.allclose(out, r, rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad(loss(outs), params)
    want = torch.autograd.grad(loss(ref), params)
    for g, w in zip(got, want):
        assert w.abs().sum() > 0
        assert torch.allclose(g, w, rtol=1e-9, atol=1e-12)


def _saved_bytes(model: TunedBackbone) -> int:
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        outs = _tensors(model(_image()))
        loss = sum(o.sum() for o in outs if o.requires_grad)  # sum's backward keeps no tensor
    _ = (outs, loss)  # the graph is alive when the meter counts (on exit)
    return meter.bytes


def test_e3va_saves_two_token_maps_per_layer():
    """Hand count: per layer the two adapters' input taps ``a`` and ``m``, float32, of
    ``(B, 1 + 5 * 6 tokens, 32)``; the highway's additions keep nothing."""
    model = _tuned(_upstream('plain'), 'E3VA')
    assert _saved_bytes(model) == TINY['num_layers'] * 2 * BATCH * (1 + 5 * 6) * 32 * 4


def test_every_method_applies_and_bench_lists_them():
    cfg = dict(backbone=dict(type='VisionTransformer', **TINY))
    assert BackboneTuning().methods(cfg) == [
        'full', 'frozen', 'partial-1', 'bitfit', 'adapter', 'lora', 'adaptformer', 'lorand',
        'e3va']
    init_default_scope('mmseg')
    model = MODELS.build(dict(type='TunedBackbone', module=dict(type='VisionTransformer', **TINY),
                              method='e3va'))
    assert isinstance(model.family, ViTFamily)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match='frozen_exclude'):
        TunedBackbone(module=_upstream('plain', frozen_exclude=['cls_token']), method='e3va')
    with pytest.raises(ValueError, match=r'out_indices \(1, 4\)'):
        TunedBackbone(module=_upstream('plain', out_indices=(1, 4)), method='adapter')
