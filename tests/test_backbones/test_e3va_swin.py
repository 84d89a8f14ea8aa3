"""E3VA on a small random-init Swin: frozen trunk, gradient highway, init equality, budgets."""
import pytest
import torch
from mmengine.registry import MODELS

from mmsidetune.cost import SavedTensorMeter


def _trunk_params(model):
    tuning = {id(p) for m in model.trainable_modules() for p in m.parameters()}
    return [(n, p) for n, p in model.named_parameters() if id(p) not in tuning]


def test_trunk_frozen_in_init_and_after_train(build_small_swin):
    model = build_small_swin('e3va')
    trunk = _trunk_params(model)
    assert trunk and not any(p.requires_grad for _, p in trunk)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(('highway.', 'norm')) for n in trainable)
    model.train()
    assert model.training and not model.stages.training and not model.patch_embed.training
    assert model.highway.training


def test_no_trunk_gradient_after_backward(build_small_swin, image_batch):
    model = build_small_swin('e3va').train()
    sum(o.square().mean() for o in model(image_batch)).backward()
    assert all(p.grad is None for _, p in _trunk_params(model))
    got_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert any(n.startswith('highway.') for n in got_grad)
    assert any(n.startswith('norm3') for n in got_grad)


def test_trunk_stores_nothing_for_backward(build_small_swin, image_batch):
    """Only the highway (adapters, norms, highway PatchMerging) saves tensors for backward."""
    model = build_small_swin('e3va').train()
    meter = SavedTensorMeter(exclude=model.parameters())
    packed_in_trunk, calls = [], []

    def pre(module, args):
        module._packs_before = meter.num_tensors

    def post(module, args, output):
        calls.append(module)
        packed_in_trunk.append(meter.num_tensors - module._packs_before)

    trunk_layers = [model.patch_embed] + [
        layer for stage in model.stages for block in stage.blocks
        for layer in (block.norm1, block.attn, block.norm2, block.ffn.layers)]
    handles = [m.register_forward_pre_hook(pre) for m in trunk_layers]
    handles += [m.register_forward_hook(post) for m in trunk_layers]
    with meter:
        model(image_batch)
    for h in handles:
        h.remove()
    assert len(calls) == len(trunk_layers)  # every trunk layer ran under observation
    assert sum(packed_in_trunk) == 0
    assert meter.num_tensors > 0  # while the highway did save its inputs


@pytest.mark.parametrize('highway', ['full', 'residual'])
def test_outputs_equal_frozen_trunk_at_init(build_small_swin, image_batch, highway):
    full = build_small_swin('full')
    e3va = build_small_swin('e3va', highway=highway)
    frozen = build_small_swin('frozen')
    missing, unexpected = e3va.load_state_dict(full.state_dict(), strict=False)
    assert not unexpected and all(k.startswith('highway.') for k in missing)
    frozen.load_state_dict(full.state_dict())
    full.eval()
    e3va.train()
    frozen.train()
    with torch.no_grad():
        ref = full(image_batch)
    for a, b, c in zip(ref, e3va(image_batch), frozen(image_batch)):
        assert torch.equal(a, b)
        assert torch.equal(a, c)


def test_saved_for_backward_below_half_of_full(build_small_swin, image_batch):
    saved = {}
    for method in ('full', 'e3va', 'frozen'):
        model = build_small_swin(method).train()
        with SavedTensorMeter(exclude=model.parameters()) as meter:
            out = model(image_batch)  # the graph stays alive: what it holds is counted
        del out
        saved[method] = meter.bytes
    assert saved['frozen'] == 0
    assert 0 < saved['e3va'] < 0.5 * saved['full']


# Swin-B / Swin-L trunk shapes (mmdet naming); budgets from SPEC.md section 1.
SWIN_B = dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
SWIN_L = dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48))


@pytest.mark.parametrize('arch,budget', [(SWIN_B, 1.20e6), (SWIN_L, 1.79e6)])
def test_trainable_budget_matches_spec(arch, budget):
    model = MODELS.build(dict(type='E3VASwinTransformer', window_size=7, **arch))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert abs(trainable - budget) / budget < 0.02


def test_swin_b_trunk_size_matches_spec():
    model = MODELS.build(dict(type='FrozenSwinTransformer', window_size=7, **SWIN_B))
    assert abs(sum(p.numel() for p in model.parameters()) - 86.75e6) / 86.75e6 < 0.01


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='highway'):
        MODELS.build(dict(type='E3VASwinTransformer', highway='sideways'))
    with pytest.raises(ValueError, match='frozen_stages'):
        MODELS.build(dict(type='E3VASwinTransformer', frozen_stages=1))
