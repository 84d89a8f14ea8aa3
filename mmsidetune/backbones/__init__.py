"""Swin Transformer backbones with a tuning method applied; importing registers them in
mmengine's root ``MODELS`` (visible from mmdet and mmseg configs)."""
from .e3va_swin import E3VABlockAdapters, E3VASwinTransformer
from .frozen_swin import FrozenSwinTransformer
from .full_swin import FullSwinTransformer
from .tuned_swin import TUNING_METHODS, TunedSwinTransformer, load_swin_state_dict

__all__ = [
    'TunedSwinTransformer', 'FullSwinTransformer', 'FrozenSwinTransformer', 'E3VASwinTransformer',
    'E3VABlockAdapters', 'TUNING_METHODS', 'load_swin_state_dict'
]
