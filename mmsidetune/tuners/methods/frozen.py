"""Frozen trunk: the backbone is a fixed feature extractor; only neck and heads train."""
import torch

from ..registry import TUNING_METHODS
from .base import TuningMethod

__all__ = ['Frozen']


@TUNING_METHODS.register_module()
class Frozen(TuningMethod):
    """Every backbone parameter frozen (output norms included), the trunk in eval mode and run
    under ``torch.no_grad()``: the memory floor every frozen-trunk method is compared with.

    Shapes: as the upstream backbone; no output requires grad.
    """

    name = 'frozen'
    layers_name = None
    trains_output_norms = False

    def forward(self, family, x: torch.Tensor):
        with torch.no_grad():
            return family.upstream_forward(x)
