"""Adapter, LoRA, AdaptFormer and LoRand on Swin: budgets against the published counts (V-PETL
Bench), pretrained loading and deep copies, built through ``TunedBackbone``. Trainable sets,
gradients, init equality and saved-for-backward bytes are the (family x method) table of
tests/test_tuners/test_backbone_methods.py."""
import copy

import pytest
import torch
from mmengine.registry import MODELS

from mmsidetune.backbones import SWIN_ALIASES as TUNING_METHODS
from mmsidetune.tuners import BackboneTuning, TunedBackbone

IN_STREAM = ('adapter', 'lora', 'adaptformer', 'lorand')
TUNING_ATTR = dict(adapter='adapters', lora='lora', adaptformer='adapters', lorand='adapters')

# V-PETL Bench: trainable backbone-side parameters, output norms included.
SWIN_B = dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=7)
SWIN_L = dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), window_size=7)
BUDGETS = {
    'adapter': (3.11e6, 4.66e6),
    'lora': (3.03e6, 4.57e6),
    'adaptformer': (3.11e6, 4.66e6),
    'lorand': (1.20e6, 1.31e6),
}
# The Swin-L configs of LoRand set a fixed 64-wide bottleneck (see LoRandSwinTransformer).
SWIN_L_OVERRIDES = dict(lorand=dict(adapter_hidden_dims=64))


def _build(method, arch, **overrides):
    """``TunedBackbone`` of an mmdet Swin, method options spelled as in the paper configs."""
    module, method, _ = BackboneTuning.split(dict(type=TUNING_METHODS[method], **arch,
                                                  **overrides))
    return TunedBackbone(module=module, method=method)


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize('method', IN_STREAM)
def test_trainable_budget_matches_spec(method):
    budget_b, budget_l = BUDGETS[method]
    swin_b = _trainable(_build(method, SWIN_B))
    swin_l = _trainable(_build(method, SWIN_L, **SWIN_L_OVERRIDES.get(method, {})))
    assert abs(swin_b - budget_b) / budget_b < 0.02, swin_b
    assert abs(swin_l - budget_l) / budget_l < 0.02, swin_l


def test_lorand_shares_e3va_adapter_and_count_on_swin_b():
    from mmsidetune.tuners.layers import DualLowRankAdapter
    lorand, e3va = _build('lorand', SWIN_B), _build('e3va', SWIN_B)
    assert _trainable(lorand) == _trainable(e3va)
    assert isinstance(lorand.adapters[0][0]['attn'], DualLowRankAdapter)
    assert isinstance(e3va.highway[0][0]["attn"], DualLowRankAdapter)


@pytest.mark.parametrize('method', IN_STREAM)
def test_pretrained_trunk_loads_unchanged_keys(build_small_swin, image_batch, tmp_path, method):
    full = build_small_swin('full').eval()
    path = str(tmp_path / 'detector.pth')
    torch.save({'state_dict': {'backbone.' + k: v for k, v in full.state_dict().items()}}, path)
    model = build_small_swin(TUNING_METHODS[method],
                             init_cfg=dict(type='Pretrained', checkpoint=path)).train()
    trunk = {k: v for k, v in model.state_dict().items() if k.startswith('stages.')}
    assert trunk.keys() <= full.state_dict().keys()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(full(image_batch), model(image_batch)))


@pytest.mark.parametrize('method', IN_STREAM)
def test_deepcopy_hooks_call_the_copied_adapters(build_small_swin, image_batch, method):
    """EMA-style deep copies must not share adapters with the original through the hooks."""
    model = build_small_swin(TUNING_METHODS[method]).eval()
    with torch.no_grad():
        before = model(image_batch)[-1]
        twin = copy.deepcopy(model)
        assert type(twin) is type(model) and twin.family.module is twin
        for p in getattr(twin, TUNING_ATTR[method]).parameters():
            p.add_(0.01)
        assert torch.equal(model(image_batch)[-1], before)
        assert not torch.equal(twin(image_batch)[-1], before)


def test_bad_lora_targets_raise():
    with pytest.raises(ValueError, match='targets'):
        MODELS.build(dict(type='LoRASwinTransformer', lora_targets=('fc1', )))
    with pytest.raises(ValueError, match='frozen_stages'):
        MODELS.build(dict(type='AdapterSwinTransformer', frozen_stages=1))
