"""E3VA's gradients against an independent reference of the highway recurrence (float64).

The reference re-derives each block's branch outputs from the upstream sub-modules (no hooks,
no lean adapter, no checkpoint) and runs the recurrence of docs/e3va.md with the plain adapter
modules:

    h_0 = x_0,   h_{l+1} = h_l + a_l + m_l + A_attn(a_l) + A_mlp(m_l),
    out_s = norm_s(h at the end of stage s),   h <- downsample_s(h)

with random non-zero adapters, so every adapter factor gets a non-trivial gradient.
"""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope

from mmsidetune.tuners import TunedBackbone

SWIN = dict(type='SwinTransformer', embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
            window_size=7)
VIT = dict(type='VisionTransformer', img_size=(64, 64), patch_size=16, embed_dims=32,
           num_layers=4, num_heads=2, mlp_ratio=2, out_indices=(1, 3), final_norm=True)


def _model(scope, module, **method):
    init_default_scope(scope)
    torch.manual_seed(0)
    model = TunedBackbone(module=dict(module), method=dict(type='E3VA', **method))
    model.init_weights()
    torch.manual_seed(2)
    for p in model.method.parameters():
        nn.init.normal_(p, std=0.05)
    return model.double().train()


def _swin_reference(model, img):
    m, hw_shape = model, None
    x, hw_shape = m.patch_embed(img)
    x = m.drop_after_pos(x)
    h, outs = x, []
    for i, stage in enumerate(m.stages):
        for j, block in enumerate(stage.blocks):
            with torch.no_grad():
                a = block.attn(block.norm1(x), hw_shape)
                x_mid = x + a
                ffn = block.ffn
                mlp = ffn.dropout_layer(ffn.gamma2(ffn.layers(block.norm2(x_mid))))
                x = x_mid + mlp
            adapters = model.highway[i][j]
            h = h + a + mlp + adapters['attn'](a) + adapters['mlp'](mlp)
        if i in m.out_indices:
            out = getattr(m, f'norm{i}')(h)
            outs.append(out.view(-1, *hw_shape, m.num_features[i]).permute(0, 3, 1, 2))
        if stage.downsample is not None:
            h, _ = stage.downsample(h, hw_shape)
            with torch.no_grad():
                x, hw_shape = stage.downsample(x, hw_shape)
    return outs


def _vit_reference(model, img):
    m = model
    x, hw_shape = m.patch_embed(img)
    x = torch.cat((m.cls_token.expand(img.shape[0], -1, -1), x), dim=1)
    x = m._pos_embeding(x, hw_shape, m.pos_embed)
    h, outs = x, []
    for i, layer in enumerate(m.layers):
        with torch.no_grad():  # identity=0: the branch outputs alone
            a = layer.attn(layer.norm1(x), identity=torch.zeros_like(x))
            x_mid = x + a
            mlp = layer.ffn(layer.norm2(x_mid), identity=torch.zeros_like(x))
            x = x_mid + mlp
        adapters = model.highway[i][0]
        h = h + a + mlp + adapters['attn'](a) + adapters['mlp'](mlp)
        hn = m.norm1(h) if i == len(m.layers) - 1 and m.final_norm else h
        if i in m.out_indices:
            out = hn[:, 1:]
            outs.append(out.reshape(out.shape[0], *hw_shape, -1).permute(0, 3, 1, 2))
    return outs


def _grads(model, outs):
    model.zero_grad(set_to_none=True)
    sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype, device=o.device).view_as(o)).sum()
        for o in outs).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('scope,module,reference,options', [
    ('mmdet', SWIN, _swin_reference, dict()),
    ('mmdet', SWIN, _swin_reference, dict(recompute_trunk=True)),
    ('mmseg', VIT, _vit_reference, dict()),
    ('mmseg', VIT, _vit_reference, dict(recompute_trunk='input')),
])
def test_e3va_gradients_equal_the_reference_recurrence(scope, module, reference, options):
    model = _model(scope, module, **options)
    img = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    outs = model(img)
    grads = _grads(model, outs)
    ref_outs = reference(model, img)
    ref_grads = _grads(model, ref_outs)
    assert len(outs) == len(ref_outs)
    for a, b in zip(outs, ref_outs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert grads.keys() == ref_grads.keys()
    assert sum(k.startswith('highway.') for k in grads) == sum(
        1 for n, _ in model.named_parameters() if n.startswith('highway.'))
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-10, atol=1e-12, msg=k)
