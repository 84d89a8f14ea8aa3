"""bench rows for E3VA's memory options (TUNING_VARIANTS): method selection only."""
import pytest
from mmengine.config import Config

from mmsidetune.backbones import TUNING_METHODS, TUNING_VARIANTS
from mmsidetune.cost import BenchError, apply_method
from mmsidetune.cost.bench import _known_methods


def test_variant_sets_backbone_type_and_options(demo_config):
    cfg = Config.fromfile(demo_config)
    lowmem = apply_method(cfg, 'e3va-lowmem').model.backbone
    assert lowmem.type == 'E3VASwinTransformer'
    assert (lowmem.tap_dtype, lowmem.recompute_trunk, lowmem.trunk_dtype) == \
        ('bfloat16', 'input', 'bfloat16')
    assert lowmem.embed_dims == cfg.model.backbone.embed_dims  # the config's own settings stay
    plain = apply_method(cfg, 'e3va').model.backbone
    assert 'recompute_trunk' not in plain and 'trunk_dtype' not in plain
    # a variant's options never leak into the next method built from the same config
    assert 'tap_dtype' not in apply_method(cfg, 'full').model.backbone
    assert TUNING_VARIANTS['e3va-lowmem'][1]['trunk_dtype'] == 'bfloat16'


def test_all_is_the_seven_methods_and_unknown_variants_raise(demo_config):
    cfg = Config.fromfile(demo_config)
    assert list(_known_methods(cfg, variants=False)) == list(TUNING_METHODS)
    assert set(TUNING_VARIANTS) <= set(_known_methods(cfg))
    with pytest.raises(BenchError, match='unknown method'):
        apply_method(cfg, 'e3va-fast')
