"""E3VA's memory options (tap_dtype, recompute_trunk, trunk_dtype) and the lean highway: exact
byte counts by hand, gradients against the plain path, trunk frozen and in eval mode."""
import pytest
import torch
import torch.nn as nn

from mmsidetune.cost import SavedTensorMeter

# conftest's SMALL_SWIN on (2, 3, 112, 160): tokens per image and width per stage
TOKENS = (28 * 40, 14 * 20, 7 * 10, 4 * 5)
DIMS = (32, 64, 128, 256)
DEPTHS = (2, 2, 2, 2)
BR = 16  # B * r of the default adapters


def _randomise_adapters(model, seed=2):
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if name.startswith('highway.'):
            nn.init.normal_(p, std=0.05)
    return model


def _grads(model, images):
    model.zero_grad(set_to_none=True)
    outs = model(images)
    sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype, device=o.device).view_as(o)).sum()
        for o in outs).backward()
    return outs, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _saved_bytes(model, images):
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        out = model(images)  # the graph stays alive while the meter reads it
    del out
    return meter.bytes


def _trunk_params(model):
    tuning = {id(p) for m in model.trainable_modules() for p in m.parameters()}
    return [(n, p) for n, p in model.named_parameters() if id(p) not in tuning]


@pytest.mark.parametrize('highway', ['full', 'residual'])
@pytest.mark.parametrize('options', [dict(), dict(recompute_trunk=True),
                                     dict(recompute_trunk=(0, 1)),
                                     dict(recompute_trunk='input')])
def test_gradients_equal_plain_adapters_float64(build_small_swin, image_batch, highway, options,
                                                monkeypatch):
    """Lean adapters (and recomputed taps) against the plain module composition, float64."""
    from mmsidetune.tuners.methods import e3va
    images = image_batch.double()
    ref = _randomise_adapters(build_small_swin('e3va', highway=highway)).double().train()
    model = build_small_swin('e3va', highway=highway, **options).double().train()
    model.load_state_dict(ref.state_dict())
    with monkeypatch.context() as patch:  # the reference: the adapter modules' own forward
        patch.setattr(e3va, 'lean_dual_lowrank_adapter', lambda adapter, u, _: adapter(u))
        outs_ref, grads_ref = _grads(ref, images)
    outs, grads = _grads(model, images)
    for a, b in zip(outs, outs_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert grads.keys() == grads_ref.keys()
    assert any(k.startswith('highway.') and k.endswith('down.Q') for k in grads)
    for k in grads_ref:
        torch.testing.assert_close(grads[k], grads_ref[k], rtol=1e-10, atol=1e-12, msg=k)


def test_compact_taps_change_only_q_down_gradients(build_small_swin, image_batch):
    images = image_batch.double()
    ref = _randomise_adapters(build_small_swin('e3va')).double().train()
    model = build_small_swin('e3va', tap_dtype='bfloat16').double().train()
    model.load_state_dict(ref.state_dict())
    outs_ref, grads_ref = _grads(ref, images)
    outs, grads = _grads(model, images)
    for a, b in zip(outs, outs_ref):
        assert torch.equal(a, b)
    for k, g in grads_ref.items():
        if k.endswith('down.Q'):
            torch.testing.assert_close(grads[k], g, rtol=0, atol=2e-2 * g.abs().max(), msg=k)
        else:
            torch.testing.assert_close(grads[k], g, rtol=1e-10, atol=1e-12, msg=k)


def _hand_count_exact(highway):
    """Bytes the lean float32 highway keeps: per block the two taps a, m (d floats per token
    each); per stage end the highway state once; the last norm's mean and rstd."""
    n = [2 * t for t in TOKENS]
    total = sum(DEPTHS[s] * 2 * n[s] * DIMS[s] * 4 for s in range(4))
    total += sum(n[s] * DIMS[s] * 4 for s in range(4))  # h (or x + delta) at every stage end
    if highway == 'full':
        total += 2 * n[3] * 4  # norm3's mean and rstd (norm0..2 run inside the checkpoint)
    else:
        total += sum(2 * n[s] * 4 for s in range(4))  # every norm's mean and rstd
    return total


@pytest.mark.parametrize('highway', ['full', 'residual'])
def test_saved_bytes_match_hand_counts(build_small_swin, image_batch, highway):
    n = [2 * t for t in TOKENS]
    exact = _saved_bytes(build_small_swin('e3va', highway=highway).train(), image_batch)
    assert exact == _hand_count_exact(highway)
    # compact taps: each tap's x part in bfloat16 (half) plus its B * r float32 projection
    compact = _saved_bytes(build_small_swin('e3va', highway=highway,
                                            tap_dtype='bfloat16').train(), image_batch)
    taps = sum(DEPTHS[s] * 2 * n[s] for s in range(4))
    assert compact == exact - sum(DEPTHS[s] * 2 * n[s] * DIMS[s] * 2 for s in range(4)) + \
        taps * BR * 4
    # recomputed taps: only the stage inputs (trunk x, and the highway h from stage 1 on)
    recomputed = _saved_bytes(build_small_swin('e3va', highway=highway,
                                               recompute_trunk=True).train(), image_batch)
    per_stage = [n[s] * DIMS[s] * 4 for s in range(4)]
    if highway == 'full':
        assert recomputed == per_stage[0] + 2 * sum(per_stage[1:])
    else:
        assert recomputed == sum(per_stage)
    # 'input': the image only
    image_only = _saved_bytes(build_small_swin('e3va', highway=highway,
                                               recompute_trunk='input').train(), image_batch)
    assert image_only == image_batch.numel() * 4
    # stages 0 and 1 recomputed: their inputs instead of their taps and stage-end states
    partial = _saved_bytes(build_small_swin('e3va', highway=highway,
                                            recompute_trunk=(0, 1)).train(), image_batch)
    early = sum(DEPTHS[s] * 2 * n[s] * DIMS[s] * 4 + n[s] * DIMS[s] * 4 for s in (0, 1))
    if highway == 'full':
        assert partial == exact - early + per_stage[0] + 2 * per_stage[1]
    else:
        early += sum(2 * n[s] * 4 for s in (0, 1))  # norm0/1 mean and rstd
        assert partial == exact - early + per_stage[0] + per_stage[1]


@pytest.mark.parametrize('options', [
    dict(tap_dtype='bfloat16'),
    dict(recompute_trunk=True),
    dict(trunk_dtype='bfloat16'),
    dict(recompute_trunk=True, tap_dtype='bfloat16', trunk_dtype='bfloat16'),
    dict(recompute_trunk='input', tap_dtype='bfloat16', trunk_dtype='bfloat16'),
    dict(highway='residual', recompute_trunk=True, trunk_dtype='bfloat16'),
])
def test_trunk_frozen_in_eval_and_without_gradient(build_small_swin, image_batch, options):
    model = _randomise_adapters(build_small_swin('e3va', **options)).train()
    assert not model.stages.training and not model.patch_embed.training
    assert model.highway.training
    outs, grads = _grads(model, image_batch)
    assert all(o.dtype == torch.float32 for o in outs)
    trunk = _trunk_params(model)
    assert trunk and all(p.grad is None and not p.requires_grad for _, p in trunk)
    assert any(k.startswith('highway.') for k in grads) and 'norm3.weight' in grads


def test_bf16_trunk_holds_bf16_weights_and_stays_close_to_fp32(build_small_swin, image_batch):
    ref = build_small_swin('e3va').eval()
    model = build_small_swin('e3va', trunk_dtype='bfloat16').eval()
    # random init ran in float32 and gave the same trunk; loading float32 weights casts them
    assert torch.equal(model.stages[0].blocks[0].attn.w_msa.qkv.weight,
                       ref.stages[0].blocks[0].attn.w_msa.qkv.weight.bfloat16())
    model.load_state_dict(ref.state_dict())
    state = model.state_dict()
    assert state['stages.2.blocks.1.ffn.layers.1.weight'].dtype == torch.bfloat16
    assert state['patch_embed.projection.weight'].dtype == torch.bfloat16
    assert state['norm3.weight'].dtype == torch.float32
    assert state['highway.0.0.attn.down.Q'].dtype == torch.float32
    with torch.no_grad():
        for a, b in zip(model(image_batch), ref(image_batch)):
            assert a.dtype == torch.float32
            assert ((a - b).norm() / b.norm()).item() < 3e-2


def test_bad_dtypes_raise(build_small_swin):
    with pytest.raises(ValueError, match='tap_dtype'):
        build_small_swin('e3va', tap_dtype='int8')
    with pytest.raises(ValueError, match='trunk_dtype'):
        build_small_swin('e3va', trunk_dtype=None)
    for bad in (1, (0, 4), 'all', 'image'):
        with pytest.raises(ValueError, match='recompute_trunk'):
            build_small_swin('e3va', recompute_trunk=bad)
