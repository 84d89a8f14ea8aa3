"""TunedBackbone's contract: upstream state-dict layout both ways, clear errors for what it
cannot tune, and the Swin aliases equal to the wrapper they stand for."""
import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet, SwinTransformer
from mmengine.registry import MODELS, init_default_scope

from mmsidetune.tuners import TunedBackbone, build_method

SWIN = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7)


def _swin_wrapper(method):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = TunedBackbone(module=dict(type='SwinTransformer', **SWIN), method=method)
    model.init_weights()
    return model


@pytest.mark.parametrize('method', ['e3va', 'lora', 'adapter'])
def test_state_dict_is_the_upstream_layout_both_ways(method):
    plain = SwinTransformer(**SWIN)
    plain.init_weights()
    tuned = _swin_wrapper(method)
    layers = tuned.method.layers_name
    # a plain checkpoint loads into the tuned backbone: only the method's layers are new
    result = tuned.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith(layers + '.') for k in result.missing_keys)
    # ... and the tuned trunk loads into the untouched upstream model, strictly
    trunk = {k: v for k, v in tuned.state_dict().items() if not k.startswith(layers + '.')}
    fresh = SwinTransformer(**SWIN)
    fresh.load_state_dict(trunk, strict=True)
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in fresh.state_dict().items())
    # reading through to the upstream module's attributes
    assert tuned.out_indices == plain.out_indices and isinstance(tuned, type(plain))


def test_alias_is_the_wrapper_it_stands_for():
    init_default_scope('mmdet')
    torch.manual_seed(0)
    alias = MODELS.build(dict(type='E3VASwinTransformer', adapter_rank=4, **SWIN))
    wrapper = _swin_wrapper(dict(type='E3VA', rank=4))
    assert alias.state_dict().keys() == wrapper.state_dict().keys()
    alias.load_state_dict(wrapper.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(alias(x), wrapper(x)))


def test_errors_name_the_cause():
    init_default_scope('mmdet')
    with pytest.raises(TypeError, match='not a backbone family'):
        TunedBackbone(module=nn.Linear(2, 2), method='e3va')
    with pytest.raises(KeyError, match='unknown tuning method'):
        build_method('prompt-tuning')
    resnet = dict(type='ResNet', depth=50)
    with pytest.raises(ValueError, match='no linear layers'):
        TunedBackbone(module=resnet, method='lora')
    with pytest.raises(ValueError, match='frozen_stages=1'):
        TunedBackbone(module=dict(resnet, frozen_stages=1), method='e3va')
    # the full method keeps the upstream frozen_stages meaning
    full = TunedBackbone(module=dict(resnet, frozen_stages=1), method='full')
    assert isinstance(full, ResNet) and not full.layer1[0].conv1.weight.requires_grad


@pytest.mark.parametrize('method', ['e3va', 'lora', 'adapter', 'bitfit'])
def test_one_name_per_trunk_tensor(method):
    tuned = _swin_wrapper(method)
    assert isinstance(tuned, SwinTransformer) and not hasattr(tuned, 'module')
    names = [n for n, _ in tuned.named_parameters()]
    assert set(names) <= set(tuned.state_dict()) and 'norm3.weight' in names
    plain = SwinTransformer(**SWIN)
    assert {n for n in names if not n.startswith(tuned.method.layers_name or '-')} == \
        {n for n, _ in plain.named_parameters()}


@pytest.mark.parametrize('method', ['e3va', 'lora', 'adapter', 'mona', 'partial-1', 'bitfit'])
def test_unload_gives_the_plain_upstream_backbone(method):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    plain = SwinTransformer(**SWIN)
    plain.eval()
    tuned = TunedBackbone(module=SwinTransformer(**SWIN), method=method)
    tuned.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for p in tuned.method.parameters():
            p.normal_()  # layers that change the output until they are removed
    back = tuned.unload()
    back.eval()  # mmdet's SwinTransformer.train() returns None
    assert type(back) is SwinTransformer and back.state_dict().keys() == plain.state_dict().keys()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in back.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(back(x), plain(x)))


@pytest.mark.parametrize('family', ['swin', 'vit'])
def test_merge_and_unload_equals_the_lora_model(family):
    if family == 'swin':
        tuned = _swin_wrapper('lora')
        x, kind = torch.randn(1, 3, 64, 64), SwinTransformer
    else:
        from mmseg.models.backbones import VisionTransformer as kind
        torch.manual_seed(0)
        tuned = TunedBackbone(module=dict(type='mmseg.VisionTransformer', img_size=32,
                                          patch_size=8, embed_dims=32, num_layers=2,
                                          num_heads=2, out_indices=(1, )),
                              method=dict(type='LoRA', rank=4, targets=('q', 'v', 'fc1')))
        x = torch.randn(1, 3, 32, 32)
    tuned.eval()
    with torch.no_grad():
        for p in tuned.method.parameters():
            p.normal_(0, 0.1)
        want = tuned(x)
        merged = tuned.merge_and_unload()
        merged.eval()
        got = merged(x)
    assert type(merged) is kind and not any(k.startswith('lora.') for k in merged.state_dict())
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_merge_and_unload_refuses_other_methods():
    from mmsidetune.tuners import LoRAMergeError
    with pytest.raises(LoRAMergeError, match='no LoRA-tuned backbone'):
        _swin_wrapper('adapter').merge_and_unload()


def test_a_pickled_tuned_backbone_loads_as_the_same_class():
    """``torch.save(model)`` pickles the cached subclass by its upstream class."""
    import io
    tuned = _swin_wrapper('e3va').eval()
    x = torch.randn(1, 3, 64, 64)
    buffer = io.BytesIO()
    torch.save(tuned, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is type(tuned) and loaded.family.module is loaded
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(x), tuned(x)))


def test_a_refused_method_leaves_the_given_module_as_it_was():
    resnet = ResNet(depth=18)
    with pytest.raises(ValueError, match='no linear layers'):
        TunedBackbone(module=resnet, method='lora')
    with pytest.raises(ValueError, match='recompute_trunk'):
        TunedBackbone(module=resnet, method=dict(type='E3VA', recompute_trunk=(7, )))
    assert type(resnet) is ResNet and all(p.requires_grad for p in resnet.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in resnet.modules())
    assert isinstance(TunedBackbone(module=resnet, method='e3va'), ResNet)
