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
