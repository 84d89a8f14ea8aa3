"""Shared fixtures: small random-init Swin backbones (tests never download weights)."""
import os.path as osp

import pytest
import torch

import mmsidetune  # noqa: F401  (registers the modules)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO_ROOT, 'configs', 'e3va',
                       'cascade-mask-rcnn_e3va-swin-mini_fpn_40i_bundled-coco.py')
SMALL_SWIN = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7,
                  drop_path_rate=0.1)
TYPES = dict(full='FullSwinTransformer', frozen='FrozenSwinTransformer', e3va='E3VASwinTransformer')


@pytest.fixture
def repo_root():
    return REPO_ROOT


@pytest.fixture
def demo_config():
    return DEMO_CONFIG


@pytest.fixture
def small_swin_cfg():
    return dict(SMALL_SWIN)


@pytest.fixture
def build_small_swin():
    """``build_small_swin(method, **overrides)``: a small random-init ``TunedBackbone`` of an mmdet
    Swin, seeded; ``method`` a short name of :data:`TYPES` or a legacy alias type, whose option
    spelling ``overrides`` may use (``adapter_rank``, ``highway``, Swin options)."""

    def _build(method, **overrides):
        from mmsidetune.tuners import BackboneTuning, TunedBackbone
        torch.manual_seed(0)
        module, method, extra = BackboneTuning.split(
            dict(type=TYPES.get(method, method), **{**SMALL_SWIN, **overrides}))
        model = TunedBackbone(module=module, method=method, **extra)
        model.init_weights()
        return model

    return _build


@pytest.fixture
def image_batch():
    torch.manual_seed(1)
    return torch.randn(2, 3, 112, 160)
