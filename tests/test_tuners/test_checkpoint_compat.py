"""Files written before issue 19 (one name per trunk tensor) still load and give the same outputs.

The fixture (``tests/data/tuned_v1``, written by its ``make_fixture.py`` with the code of main at
c8f627d, when parameters were named ``backbone.module.<key>``) holds, per tiny tuned backbone, a
full state dict, an adapter-only file and the outputs on a fixed input.
"""
import os.path as osp
import sys
from collections import OrderedDict

import pytest
import torch
from mmengine.registry import MODELS

from mmsidetune.utils.adapter_checkpoint import load_adapter_checkpoint

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'tuned_v1')
sys.path.insert(0, DATA)
from make_fixture import MODELS as CFGS  # noqa: E402
from make_fixture import Holder, build  # noqa: E402

sys.path.remove(DATA)
LAYERS = dict(swin_e3va='highway.', vit_lora='lora.', resnet_adapter='adapters.')


def _load(name, kind):
    return torch.load(osp.join(DATA, f'{name}.{kind}.pth'), map_location='cpu')


def _check_outputs(model, name):
    ref = _load(name, 'out')
    model.eval()
    with torch.no_grad():
        outs = model(ref['input'])
    assert len(outs) == len(ref['outputs'])
    for got, want in zip(outs, ref['outputs']):
        assert torch.equal(got, want)


@pytest.mark.parametrize('name', sorted(CFGS))
def test_full_state_dict_of_before_loads_strictly(name):
    holder = Holder(build(name))
    holder.load_state_dict(_load(name, 'full')['state_dict'], strict=True)
    _check_outputs(holder.backbone, name)


@pytest.mark.parametrize('name', sorted(CFGS))
def test_adapter_only_file_of_before_loads(name):
    holder = Holder(build(name))
    meta = load_adapter_checkpoint(holder, osp.join(DATA, f'{name}.adapter.pth'))
    assert meta['format'] == 'mmsidetune.adapter_only.v1'
    _check_outputs(holder.backbone, name)


@pytest.mark.parametrize('name', sorted(CFGS))
def test_keys_named_like_the_old_parameters_load(name):
    """The compatibility mapping: ``backbone.module.<key>`` (the old parameter names, e.g. a
    state dict made from ``named_parameters()``) loads as ``backbone.<key>``."""
    state = _load(name, 'full')['state_dict']
    old = OrderedDict((k if k.startswith('backbone.' + LAYERS[name]) else
                       'backbone.module.' + k[len('backbone.'):], v) for k, v in state.items())
    holder = Holder(build(name))
    holder.load_state_dict(old, strict=True)
    _check_outputs(holder.backbone, name)


@pytest.mark.parametrize('name', sorted(CFGS))
def test_plain_upstream_checkpoints_load_both_ways(name):
    state = _load(name, 'full')['state_dict']
    trunk = OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                        if not k.startswith('backbone.' + LAYERS[name]))
    plain = MODELS.build(CFGS[name]['module'])
    plain.load_state_dict(trunk, strict=True)  # tuned trunk -> plain upstream
    tuned = build(name)
    result = tuned.load_state_dict(plain.state_dict(), strict=False)  # plain -> tuned
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith(LAYERS[name]) for k in result.missing_keys)
    for key, value in plain.state_dict().items():
        assert torch.equal(tuned.state_dict()[key], value)
