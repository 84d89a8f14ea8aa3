"""The tuner core: one wrapper for any supported backbone, the tuning methods, their layers,
the backbone families and the taps (docs/tuners.md)."""
from .registry import (METHOD_VARIANTS, TUNING_METHODS, ModelTuning, build_method,  # isort: skip
                       find_model_tuning, method_class, register_method_variant,
                       register_model_tuning)
from .taps import TapRecorder  # isort: skip
from .layers import (BottleneckAdapter, DualLowRankAdapter, DualLowRankLinear,  # isort: skip
                     LoRAUpdate, MonaAdapter, add_parallel_adapter, add_serial_adapter,
                     lean_dual_lowrank_adapter)
from .families import (BackboneFamily, BlockSpec, find_family, load_swin_state_dict,  # isort: skip
                       register_family)
from .methods import (E3VA, AdaptFormer, Adapter, BitFit, Frozen, Full, LoRA,  # isort: skip
                      LoRand, Mona, Partial, TuningMethod)
from .core import BACKBONE_ALIASES, BackboneTuning, TunedBackbone  # isort: skip
from .merge import (LoRALayer, LoRAMergeError, lora_backbones, lora_layers,  # isort: skip
                    merge_lora_state_dict, plain_backbone_config)

__all__ = [
    'TunedBackbone', 'BackboneTuning', 'BACKBONE_ALIASES', 'TUNING_METHODS', 'METHOD_VARIANTS',
    'ModelTuning', 'build_method', 'method_class', 'register_method_variant',
    'register_model_tuning', 'find_model_tuning', 'TapRecorder', 'BackboneFamily', 'BlockSpec',
    'find_family', 'register_family', 'load_swin_state_dict', 'TuningMethod', 'Full', 'Frozen',
    'Adapter', 'LoRA', 'AdaptFormer', 'LoRand', 'E3VA', 'Partial', 'BitFit', 'Mona',
    'merge_lora_state_dict',
    'plain_backbone_config', 'lora_layers', 'lora_backbones', 'LoRALayer', 'LoRAMergeError',
    'BottleneckAdapter', 'DualLowRankAdapter', 'DualLowRankLinear', 'LoRAUpdate', 'MonaAdapter',
    'add_parallel_adapter', 'add_serial_adapter', 'lean_dual_lowrank_adapter'
]
