"""Adapter building blocks shared by the tuning methods."""
from .dual_lowrank import DualLowRankAdapter, DualLowRankLinear

__all__ = ['DualLowRankLinear', 'DualLowRankAdapter']
