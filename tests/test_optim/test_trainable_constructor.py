import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import mmsidetune  # noqa: F401


def _model():
    m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    for p in m[0].parameters():
        p.requires_grad_(False)
    return m


def _optim_params(wrapper):
    return {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}


@pytest.mark.parametrize('paramwise_cfg', [None, dict(norm_decay_mult=0.)])
def test_only_trainable_parameters_reach_the_optimizer(paramwise_cfg):
    model = _model()
    cfg = dict(constructor='TrainableOptimWrapperConstructor',
               optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    if paramwise_cfg:
        cfg['paramwise_cfg'] = paramwise_cfg
    wrapper = build_optim_wrapper(model, cfg)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert _optim_params(wrapper) == trainable
    if paramwise_cfg:  # mmengine's rules still apply to what is left
        norm_groups = [g for g in wrapper.optimizer.param_groups
                       if any(p is model[1].weight for p in g['params'])]
        assert norm_groups[0]['weight_decay'] == 0.


def test_default_constructor_keeps_frozen_parameters():
    """The reason this constructor exists: mmengine's default hands the frozen ones over too."""
    model = _model()
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW', lr=1e-3)))
    assert id(model[0].weight) in _optim_params(wrapper)


def test_all_frozen_model_raises():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match='nothing to optimise'):
        build_optim_wrapper(model, dict(constructor='TrainableOptimWrapperConstructor',
                                        optimizer=dict(type='AdamW', lr=1e-3)))


def test_custom_keys_written_against_checkpoint_keys_match_the_parameters():
    """Parameter names are the state-dict keys (``backbone.norm3.weight``, ``backbone.highway.*``),
    so ``paramwise_cfg.custom_keys`` written against a checkpoint reach the parameters."""
    import torch
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone = MODELS.build(dict(
        type='TunedBackbone', module=dict(type='SwinTransformer', embed_dims=16, depths=(1, 1),
                                          num_heads=(1, 2), strides=(4, 2), out_indices=(0, 1)),
        method='e3va'))
    keys = model.state_dict()
    assert 'backbone.norm1.weight' in keys and any(k.startswith('backbone.highway.') for k in keys)
    wrapper = build_optim_wrapper(model, dict(
        constructor='TrainableOptimWrapperConstructor', optimizer=dict(type='AdamW', lr=1.0),
        paramwise_cfg=dict(custom_keys={'backbone.norm1': dict(lr_mult=0.5),
                                        'backbone.highway': dict(lr_mult=0.1)})))
    lr = {p: g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
    for name, p in model.named_parameters():
        if p.requires_grad:
            want = 0.5 if name.startswith('backbone.norm1.') else (
                0.1 if name.startswith('backbone.highway.') else 1.0)
            assert lr[p] == want, name
