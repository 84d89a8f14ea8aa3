"""The Swin backbones of earlier releases, as thin aliases of
:class:`~mmsidetune.tuners.TunedBackbone`; importing registers them in mmengine's root
``MODELS`` (visible from mmdet and mmseg configs)."""
from .swin import (SWIN_ALIASES, AdaptFormerSwinTransformer, AdapterSwinTransformer,
                   BitFitSwinTransformer, E3VASwinTransformer, FrozenSwinTransformer,
                   FullSwinTransformer, LoRandSwinTransformer, LoRASwinTransformer,
                   MonaSwinTransformer, PartialSwinTransformer)

__all__ = [
    'FullSwinTransformer', 'FrozenSwinTransformer', 'AdapterSwinTransformer',
    'LoRASwinTransformer', 'AdaptFormerSwinTransformer', 'LoRandSwinTransformer',
    'E3VASwinTransformer', 'PartialSwinTransformer', 'BitFitSwinTransformer', 'MonaSwinTransformer',
    'SWIN_ALIASES'
]
