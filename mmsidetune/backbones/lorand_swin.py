"""LoRand baseline (Yin et al., "1% VS 100%", CVPR 2023) on a frozen Swin trunk; SPEC.md
section 1."""
from typing import Optional

import torch.nn as nn

from ..adapters import DualLowRankAdapter
from .serial_adapter_swin import SerialAdapterSwinTransformer
from .tuned_swin import register_tuned_swin

__all__ = ['LoRandSwinTransformer']


@register_tuned_swin('lorand')
class LoRandSwinTransformer(SerialAdapterSwinTransformer):
    """Swin with dual low-rank adapters serial in the stream, after attention and after MLP.

    The adapter is E3VA's :class:`~mmsidetune.adapters.DualLowRankAdapter` (the same building
    block: ``u + W_up GELU(W_down u)``, each weight a sum of ``adapter_branches`` products
    ``P K Q`` of rank ``adapter_rank``, ``W_up``'s ``P`` zero at init), but placed *in* the trunk's
    residual stream as in LoRand, so gradients cross the frozen trunk (unlike E3VA's highway).

    Trainable backbone parameters per adapter of width ``d`` and bottleneck ``h``:
    ``2 * (b * (r * (d + h) + r * r)) + h + d`` (two layers, ``b`` branches, biases), two per block,
    plus the output norms ``2 * d_i`` (counted, as for E3VA).

    * Swin-B, defaults (``h = d / 2``, ``r = 8``, ``b = 2``; E3VA's adapter): 1,203,456 + 3,840 =
      1,207,296 (1.21 M, SPEC 1.20 M).
    * Swin-L, ``adapter_hidden_dims=64`` (set in the Swin-L configs): 1,304,832 + 5,760 = 1,310,592
      (1.31 M, SPEC 1.31 M). With the defaults Swin-L would have 1.80 M, E3VA's count: the published
      Swin-L LoRand budget implies a narrower bottleneck; the fixed width 64 is our reading
      (UNVERIFIED: the paper's exact Swin-L setting could not be read).

    Args:
        adapter_hidden_ratio (float): Bottleneck width / block width. Defaults to 0.5.
        adapter_hidden_dims (int, optional): Fixed bottleneck width, overrides the ratio.
        adapter_rank (int): Rank of every low-rank factor. Defaults to 8.
        adapter_branches (int): Low-rank products summed per weight. Defaults to 2.
        **kwargs: the arguments of mmdet's ``SwinTransformer``.
    """

    def __init__(self,
                 adapter_hidden_ratio: float = 0.5,
                 adapter_hidden_dims: Optional[int] = None,
                 adapter_rank: int = 8,
                 adapter_branches: int = 2,
                 **kwargs):
        self._adapter_args = dict(hidden_ratio=adapter_hidden_ratio,
                                  hidden_dims=adapter_hidden_dims, rank=adapter_rank,
                                  num_branches=adapter_branches)
        super().__init__(**kwargs)

    def build_branch_adapter(self, embed_dims: int) -> nn.Module:
        return DualLowRankAdapter(embed_dims, **self._adapter_args)
