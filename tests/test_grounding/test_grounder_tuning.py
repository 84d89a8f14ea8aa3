"""The grounder on the tuner core: its methods come from TUNING_METHODS, bench switches them
through the grounder's ModelTuning, the deprecated ``tuning`` argument and the state-dict keys
of earlier releases still work, and M2IST is no method of a single backbone."""
import copy
import re

import pytest
import torch
from conftest import MINI_MODEL, make_batch
from mmdet.models.backbones import SwinTransformer
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmsidetune.cost.bench import apply_method, known_methods, set_img_size
from mmsidetune.grounding import M2IST, GrounderTuning
from mmsidetune.tuners import (Adapter, BackboneTuning, Full, TunedBackbone, build_method,
                               find_model_tuning, method_class)

SWIN = dict(type='mmdet.SwinTransformer', embed_dims=32, depths=(1, 1), num_heads=(1, 2),
            out_indices=(1, ), window_size=2)


@pytest.fixture
def mini_cfg():
    init_default_scope('mmdet')
    return Config(dict(model=Config.fromfile(MINI_MODEL).model))


def test_methods_are_the_core_registry_classes(build_mini):
    for name, cls, layers in (('m2ist', M2IST, 'side_network'), ('adapter', Adapter, 'adapters'),
                              ('full', Full, None)):
        model = build_mini(name)
        assert type(model.method) is cls is method_class(name)
        assert model.tuning_method == name == model.tuning  # deprecated alias reads the same
        assert model.method.layers_name == layers
        if layers:
            assert getattr(model, layers) is model.method
    adapter = build_mini('adapter').method
    assert (adapter.hidden_dims, adapter.act) == (32, 'ReLU')  # the config's adapter_bottleneck
    side = build_mini('m2ist').method
    assert (side.bottleneck, side.scale) == (32, 0.1)  # the config's side_network


def test_method_configs_set_their_own_options(build_mini):
    model = build_mini(dict(type='M2IST', bottleneck=8, scale=0.5))
    assert (model.method.bottleneck, model.method.scale) == (8, 0.5)
    assert model.side_network[0].vea.down.out_features == 8
    model = build_mini(dict(type='Adapter', hidden_dims=4, act='ReLU'))
    assert model.adapters[1][0]['ffn'].down.out_features == 4


def test_unsupported_or_contradicting_methods_raise(build_mini):
    with pytest.raises(ValueError, match=r"method 'e3va' is not supported; supported: "
                       r"\['full', 'adapter', 'm2ist'\]"):
        build_mini('e3va')
    with pytest.raises(KeyError, match='unknown tuning method'):
        build_mini('m2ist-typo')
    with pytest.raises(ValueError, match='disagree'):
        build_mini('m2ist', tuning='adapter')
    with pytest.raises(ValueError, match='side_network type'):
        build_mini('m2ist', side_network=dict(type='SomethingElse'))


def test_deprecated_tuning_argument_still_builds(mini_cfg):
    cfg = copy.deepcopy(mini_cfg.model)
    cfg.pop('method')
    cfg.tuning = 'adapter'
    cfg.side_network = dict(type='M3ISASideNetwork', bottleneck=32, scale=0.1)  # old configs
    model = MODELS.build(cfg)
    assert model.tuning_method == 'adapter' and isinstance(model.method, Adapter)


def test_summary_line_in_the_core_format(build_mini):
    line = build_mini('m2ist').tuning_summary()
    match = re.fullmatch(r'M2ISTGrounder \(DETRVisionEncoder, BertLanguageModel, m2ist\): '
                         r'([\d.]+) M of ([\d.]+) M model parameters trainable \(([\d.]+) %\)',
                         line)
    assert match, line
    model = build_mini('m2ist')
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert float(match.group(1)) == round(trainable / 1e6, 3)


def test_m2ist_is_no_method_for_a_single_backbone():
    swin = Config(dict(model=dict(type='RetinaNet', backbone=SWIN)))
    assert 'm2ist' not in BackboneTuning().methods(swin.model)
    assert 'm2ist' not in known_methods(swin)
    assert M2IST.for_backbones is False
    with pytest.raises(ValueError, match='does not apply to the swin family'):
        TunedBackbone(module=SwinTransformer(**{k: v for k, v in SWIN.items() if k != 'type'}),
                      method='m2ist')


def test_bench_switches_the_grounder_methods(mini_cfg):
    assert isinstance(find_model_tuning(mini_cfg.model), GrounderTuning)
    assert list(known_methods(mini_cfg)) == ['full', 'adapter', 'm2ist']
    for method in ('full', 'adapter', 'm2ist'):
        cfg = apply_method(mini_cfg, method)
        assert cfg.model.method == method and 'tuning' not in cfg.model
        built = build_method(GrounderTuning().apply(mini_cfg.model, method)['method'])
        assert built.name == method
    assert mini_cfg.model.method == 'm2ist'  # a copy was changed
    with pytest.raises(ValueError, match='unknown method'):
        apply_method(mini_cfg, 'e3va')
    old = copy.deepcopy(mini_cfg)  # a config of an earlier release
    old.model.pop('method')
    old.model.tuning = 'm2ist'
    assert apply_method(old, 'adapter').model.method == 'adapter'
    assert 'tuning' not in apply_method(old, 'adapter').model
    kept = copy.deepcopy(mini_cfg)  # a method config of the same method keeps its options
    kept.model.method = dict(type='M2IST', bottleneck=8)
    assert apply_method(kept, 'm2ist').model.method == dict(type='M2IST', bottleneck=8)
    assert GrounderTuning().describe(mini_cfg.model) == (
        'M2ISTGrounder(DETRVisionEncoder + BertLanguageModel, M2IST)')


def test_img_size_does_not_apply(mini_cfg):
    with pytest.raises(ValueError, match=r'does not apply: .*GroundingPad.*num_visual_tokens'):
        set_img_size(mini_cfg, (256, 256))


def _legacy_state(model):
    """The model's state dict in the key layout of the earlier releases."""
    state = {}
    for key, value in model.state_dict().items():
        m = re.match(r'side_network\.(\d+)\.(.*)', key)
        if m:
            key = f'side_network.layers.{m.group(1)}.{m.group(2)}'
        m = re.match(r'adapters\.([01])\.(\d+)\.(attn|ffn)\.(.*)', key)
        if m:
            index = 2 * int(m.group(2)) + (m.group(3) == 'ffn')
            key = (f"serial_adapters.{('visual', 'text')[int(m.group(1))]}.{index}."
                   f'{m.group(4)}')
        state[key] = value
    return state


@pytest.mark.parametrize('method', ['m2ist', 'adapter'])
def test_checkpoints_of_earlier_releases_load(build_mini, method):
    tuned = build_mini(method)
    with torch.no_grad():
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    legacy = _legacy_state(tuned)
    assert any(k.startswith(('side_network.layers.', 'serial_adapters.')) for k in legacy)
    fresh = build_mini(method)
    fresh.load_state_dict(legacy, strict=True)
    for key, value in tuned.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    batch = make_batch()
    fresh.eval()
    tuned.eval()
    with torch.no_grad():
        data = fresh.data_preprocessor(batch, False)
        assert torch.equal(fresh._forward(data['inputs'], data['data_samples']),
                           tuned._forward(data['inputs'], data['data_samples']))
