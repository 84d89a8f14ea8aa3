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
