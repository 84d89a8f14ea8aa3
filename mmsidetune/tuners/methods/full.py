"""Full fine-tuning: every backbone parameter trains (the reference of every cost ratio)."""
from ..registry import TUNING_METHODS
from .base import TuningMethod

__all__ = ['Full']


@TUNING_METHODS.register_module()
class Full(TuningMethod):
    """Train the whole backbone with its own forward; the upstream ``frozen_stages`` and
    ``norm_eval`` options keep their meaning. No layers of its own."""

    name = 'full'
    layers_name = None
    freezes_trunk = False
