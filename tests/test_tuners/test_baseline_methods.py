"""Partial-1, BitFit and Mona (docs/methods/partial.md, bitfit.md, mona.md): parameter counts on
Swin-B and Swin-L against the published ones, Partial-1's frozen prefix without autograd, BitFit's
trainable set, Mona's placement in the block.

Published counts: V-PETL Bench, ``README.md`` of synbol/Parameter-Efficient-Transfer-Learning-
Benchmark, tables "Benchmark results of dense prediction on COCO" (Swin-B) and "... on PASCAL
VOC and ADE20K" (Swin-L); the same numbers as the Mona paper (CVPR 2025) tables.
"""
import copy

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

from mmsidetune.cost import SavedTensorMeter
from mmsidetune.tuners import TunedBackbone

SWIN_B = dict(type='SwinTransformer', embed_dims=128, depths=(2, 2, 18, 2),
              num_heads=(4, 8, 16, 32), window_size=7)
SWIN_L = dict(type='SwinTransformer', embed_dims=192, depths=(2, 2, 18, 2),
              num_heads=(6, 12, 24, 48), window_size=7)
#: method -> (published Swin-B, Swin-L, ours Swin-B, ours Swin-L)
COUNTS = {
    'partial-1': (12.60e6, 28.34e6, 12_601_632, 28_339_632),
    'bitfit': (0.20e6, 0.30e6, 201_656, 302_484),
    # Mona: the public code's structure gives 133 d + 9728 per Mona (h = 64); no bottleneck width
    # reproduces both published numbers (docs/methods/mona.md), so ours are pinned to the code
    'mona': (4.16e6, 5.08e6, 3_667_456, 5_267_712),
}
TINY_SWIN = dict(type='SwinTransformer', embed_dims=32, depths=(2, 2, 2, 2),
                 num_heads=(1, 2, 4, 8), window_size=7, drop_path_rate=0.1)


@pytest.fixture(scope='module')
def paper_swins():
    init_default_scope('mmdet')
    return {'b': MODELS.build(SWIN_B), 'l': MODELS.build(SWIN_L)}


def _count(module, method):
    tuned = TunedBackbone(module=module, method=method)  # module becomes the tuned backbone
    count = sum(p.numel() for p in tuned.trainable_parameters())
    tuned.unload()  # ... and the plain upstream module again, for the next method
    return count


@pytest.mark.parametrize('method', list(COUNTS))
def test_parameter_counts_against_v_petl_bench(paper_swins, method):
    pub_b, pub_l, ours_b, ours_l = COUNTS[method]
    got_b, got_l = _count(paper_swins['b'], method), _count(paper_swins['l'], method)
    assert (got_b, got_l) == (ours_b, ours_l)
    if method != 'mona':
        # the published counts are rounded to 0.01 M
        assert abs(got_b - pub_b) <= 0.005e6 and abs(got_l - pub_l) <= 0.005e6
    else:  # hand count of the public code's layers: 2 Monas of 133 d + 9728 per block
        widths_b = [128] * 2 + [256] * 2 + [512] * 18 + [1024] * 2
        assert got_b == sum(2 * (133 * d + 9728) for d in widths_b)


def test_partial_options_count_blocks_backwards(paper_swins):
    last_stage = sum(p.numel() for p in paper_swins['b'].stages[3].parameters())
    assert _count(paper_swins['b'], dict(type='Partial', num_blocks=2)) == last_stage
    assert _count(paper_swins['b'], 'partial') == COUNTS['partial-1'][2]  # alias
    assert _count(paper_swins['b'], dict(type='BitFit', position_bias=False)) == 138_112


def _tiny(method, seed=0):
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    model = TunedBackbone(module=copy.deepcopy(TINY_SWIN), method=method)
    model.init_weights()
    return model


def _x():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 96)


def test_partial_prefix_runs_without_autograd():
    model = _tiny('partial-1').train()
    blocks = model.family.blocks()
    seen = {}
    blocks[0].module.register_forward_pre_hook(
        lambda m, a: seen.update(prefix_grad_mode=torch.is_grad_enabled()))
    blocks[-1].module.register_forward_pre_hook(
        lambda m, a: seen.update(grad_mode=torch.is_grad_enabled(), input=a[0]))
    outs = model(_x())
    assert seen['prefix_grad_mode'] is False and seen['grad_mode'] is True
    # the trained block's input is a constant: backward stops there
    assert not seen['input'].requires_grad and seen['input'].grad_fn is None
    assert [o.requires_grad for o in outs] == [False, False, False, True]
    outs[-1].sum().backward()
    trained = {id(p) for p in blocks[-1].module.parameters()}
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (id(p) in trained), name
    assert torch.is_grad_enabled()  # the grad mode is restored after the forward


def _saved(model):
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        outs = model(_x())
    del outs
    return meter.bytes


def test_partial_saves_only_the_trained_block_for_backward():
    partial = _saved(_tiny('partial-1').train())
    # the same block trained on its own input, which is all backward may keep
    model = _tiny('partial-1').train()
    block, family = model.family.blocks()[-1].module, model.family
    with torch.no_grad():
        x, hw = family.stem(_x())
        for i in range(3):
            x, hw, _, _ = family.run_stage(i, x, hw)
        x = model.stages[3].blocks[0](x, hw)
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        y = model.norm3(block(x, hw))
    del y
    assert partial == meter.bytes
    assert partial < _saved(_tiny('bitfit').train()) / 4


def test_partial_refuses_a_last_stage_without_output():
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match='out_indices'):
        TunedBackbone(module=dict(TINY_SWIN, out_indices=(0, 1, 2)), method='partial-1')
    with pytest.raises(ValueError, match='num_blocks'):
        TunedBackbone(module=dict(TINY_SWIN), method=dict(type='Partial', num_blocks=9))


def test_bitfit_trains_exactly_the_biases():
    model = _tiny('bitfit')
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {n for n, _ in model.named_parameters()
                     if n.endswith(('.bias', 'relative_position_bias_table'))}
    assert 'norm3.bias' in names and 'patch_embed.norm.bias' in names


def test_mona_sits_after_each_residual_add():
    """One Swin block with trained (random) Monas equals the public code's composition
    ``s1 = x + attn(norm1(x)); s1 += M1(s1); s2 = s1 + mlp(norm2(s1)); s2 += M2(s2)``."""
    model = _tiny('mona').eval()
    for p in model.method.parameters():
        p.data.normal_(0, 0.1)
    block = model.stages[1].blocks[1]
    m1, m2 = model.method[1][1]['attn'], model.method[1][1]['mlp']
    hw = (4, 6)
    torch.manual_seed(2)
    x = torch.randn(2, 24, 64)
    with torch.no_grad():
        got = block(x, hw)  # Mona attached by hooks; the reference calls the forwards without
        s1 = x + block.attn.__class__.forward(block.attn, block.norm1(x), hw)
        s1 = s1 + m1(s1, hw)
        s2 = s1 + block.ffn.layers(block.norm2(s1))
        expected = s2 + m2(s2, hw)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
