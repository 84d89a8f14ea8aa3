"""Adapter building blocks shared by the tuning methods."""
from .bottleneck import BottleneckAdapter
from .dual_lowrank import DualLowRankAdapter, DualLowRankLinear
from .lean_adapter import LeanDualLowRankAdapterFunction, lean_dual_lowrank_adapter
from .injection import add_parallel_adapter, add_serial_adapter
from .lora import LoRAUpdate
from .mona import MonaAdapter, MultiScaleDepthwise
from .weight_update import add_weight_update, frozen_weight, weight_updates

__all__ = [
    'DualLowRankLinear', 'DualLowRankAdapter', 'BottleneckAdapter', 'LoRAUpdate',
    'add_serial_adapter', 'add_parallel_adapter', 'lean_dual_lowrank_adapter',
    'LeanDualLowRankAdapterFunction', 'MonaAdapter', 'MultiScaleDepthwise', 'add_weight_update',
    'frozen_weight', 'weight_updates'
]
