"""The freezing helpers shared by TunedBackbone's conventions and the M2IST grounder."""
import torch
import torch.nn as nn
from mmdet.models.backbones import SwinTransformer

from mmsidetune.tuners import TunedBackbone
from mmsidetune.tuners.freezing import (count_trainable, freeze_except, keep_frozen_in_eval,
                                        summary_line)


def _toy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_freeze_except_leaves_gradients_only_on_the_kept_parameters():
    model = _toy()
    kept = list(model[3].parameters())
    frozen = freeze_except(model, kept)
    assert frozen == 4 * 4 + 4 + 2 * 4  # first linear + BatchNorm's weight and bias
    model(torch.randn(3, 4)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in kept)
    assert all(p.grad is None for p in list(model[0].parameters()) + list(model[2].parameters()))
    assert count_trainable(model) == (4 * 2 + 2, sum(p.numel() for p in model.parameters()))


def test_keep_frozen_in_eval_fixes_dropout_and_batchnorm():
    model = _toy().train()
    keep_frozen_in_eval([model[1], model[2]])
    assert model.training and model[0].training and not model[1].training
    x = torch.randn(3, 4)
    stats = model[2].running_mean.clone()
    assert torch.equal(model(x), model(x))  # no dropout
    assert torch.equal(model[2].running_mean, stats)  # BatchNorm statistics fixed


def test_summary_line_is_tuned_backbones_line():
    swin = SwinTransformer(embed_dims=32, depths=(1, 1), num_heads=(1, 2), out_indices=(1, ),
                           window_size=2)
    tuned = TunedBackbone(module=swin, method='e3va')
    assert summary_line('TunedBackbone', ['SwinTransformer'], 'e3va', tuned,
                        'backbone') == tuned.tuning_summary()
