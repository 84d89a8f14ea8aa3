"""Backbone families a tuning method can be applied to (docs/backbones.md)."""
from .base import (BACKBONE_FAMILIES, BackboneFamily, BlockSpec, call_in_dtype, family_for_type,
                   find_family, register_family, trunk_state, upstream_class)
from .swin import SwinFamily, load_swin_state_dict  # isort: skip
from .resnet import ResNetFamily, frozen_affine, masked_relu  # isort: skip
from .vit import ViTFamily  # isort: skip

__all__ = [
    'BlockSpec', 'BackboneFamily', 'BACKBONE_FAMILIES', 'register_family', 'find_family',
    'family_for_type', 'call_in_dtype', 'upstream_class', 'trunk_state', 'SwinFamily',
    'load_swin_state_dict',
    'ResNetFamily', 'frozen_affine', 'masked_relu', 'ViTFamily'
]
