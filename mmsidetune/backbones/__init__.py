"""Swin Transformer backbones with a tuning method applied; importing registers them in
mmengine's root ``MODELS`` (visible from mmdet and mmseg configs)."""
# Import order is registration order: TUNING_METHODS (and bench's `--methods all` table) lists
# full, frozen, the in-stream baselines, then E3VA.
from .full_swin import FullSwinTransformer  # isort: skip
from .frozen_swin import FrozenSwinTransformer  # isort: skip
from .adapter_swin import AdapterSwinTransformer  # isort: skip
from .lora_swin import LoRASwinTransformer  # isort: skip
from .adaptformer_swin import AdaptFormerSwinTransformer  # isort: skip
from .lorand_swin import LoRandSwinTransformer  # isort: skip
from .e3va_swin import E3VABlockAdapters, E3VASwinTransformer  # isort: skip
from .serial_adapter_swin import SerialAdapterSwinTransformer  # isort: skip
from .tuned_swin import (TUNING_METHODS, TUNING_VARIANTS, TunedSwinTransformer,  # isort: skip
                         load_swin_state_dict, register_tuning_variant)

__all__ = [
    'TunedSwinTransformer', 'FullSwinTransformer', 'FrozenSwinTransformer', 'E3VASwinTransformer',
    'E3VABlockAdapters', 'SerialAdapterSwinTransformer', 'AdapterSwinTransformer',
    'LoRASwinTransformer', 'AdaptFormerSwinTransformer', 'LoRandSwinTransformer',
    'TUNING_METHODS', 'TUNING_VARIANTS', 'register_tuning_variant', 'load_swin_state_dict'
]
