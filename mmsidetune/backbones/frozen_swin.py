"""Frozen-trunk baseline: the Swin backbone is a fixed feature extractor."""
from typing import List

import torch

from .tuned_swin import TunedSwinTransformer, register_tuned_swin

__all__ = ['FrozenSwinTransformer']


@register_tuned_swin('frozen')
class FrozenSwinTransformer(TunedSwinTransformer):
    """Swin Transformer with every parameter frozen (output norms included), run in eval mode
    under ``torch.no_grad()``; only the neck and heads train.

    Shapes:
        ``(B, 3, H, W)`` -> list of ``(B, C_i, H / s_i, W / s_i)``, none requiring grad.
    """

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        with torch.no_grad():
            return super().forward(x)
