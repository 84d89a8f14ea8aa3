"""bench rows for E3VA's memory options (METHOD_VARIANTS): method selection only."""
import pytest
from mmengine.config import Config

from mmsidetune.cost import BenchError, apply_method
from mmsidetune.cost.bench import known_methods
from mmsidetune.tuners import METHOD_VARIANTS

TEN = ['full', 'frozen', 'partial-1', 'bitfit', 'adapter', 'lora', 'adaptformer', 'lorand', 'mona',
       'e3va']


def test_variant_sets_backbone_type_and_options(demo_config):
    cfg = Config.fromfile(demo_config)
    lowmem = apply_method(cfg, 'e3va-lowmem').model.backbone
    assert lowmem.type == 'TunedBackbone' and lowmem.method.type == 'E3VA'
    assert (lowmem.method.tap_dtype, lowmem.method.recompute_trunk,
            lowmem.method.trunk_dtype) == ('bfloat16', 'input', 'bfloat16')
    # the config's own backbone settings stay, in the upstream module
    assert lowmem.module.type == 'mmdet.SwinTransformer'
    assert lowmem.module.embed_dims == cfg.model.backbone.embed_dims
    plain = apply_method(cfg, 'e3va').model.backbone.method
    assert 'recompute_trunk' not in plain and 'trunk_dtype' not in plain
    # a variant's options never leak into the next method built from the same config
    assert apply_method(cfg, 'full').model.backbone.method == dict(type='Full')
    assert METHOD_VARIANTS['e3va-lowmem'][1]['trunk_dtype'] == 'bfloat16'


def test_all_is_the_ten_methods_and_unknown_variants_raise(demo_config):
    cfg = Config.fromfile(demo_config)
    assert list(known_methods(cfg, variants=False)) == TEN
    assert set(METHOD_VARIANTS) <= set(known_methods(cfg))
    with pytest.raises(BenchError, match='unknown method'):
        apply_method(cfg, 'e3va-fast')
