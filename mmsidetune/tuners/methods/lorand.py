"""LoRand (Yin et al., "1% VS 100%: Parameter-Efficient Low Rank Adapter for Dense Predictions",
CVPR 2023): dual low-rank adapters serial in the residual stream."""
from typing import Optional

from ..layers import DualLowRankAdapter
from ..registry import TUNING_METHODS
from .adapter import Adapter
from .base import check_option

__all__ = ['LoRand']


@TUNING_METHODS.register_module()
class LoRand(Adapter):
    """The :class:`Adapter` placement with E3VA's building block,
    :class:`~mmsidetune.tuners.layers.DualLowRankAdapter` (``u + W_up GELU(W_down u)``, each
    weight a sum of ``num_branches`` products ``P K Q`` of rank ``rank``, ``W_up``'s ``P`` zero
    at init), so gradients cross the frozen trunk (unlike E3VA's highway).

    Parameters per adapter of width ``d`` and bottleneck ``h``:
    ``2 * (b * (r * (d + h) + r * r)) + h + d``. Swin-B, defaults (``h = d / 2``): 1,203,456 plus
    output norms 3,840 = 1,207,296 (1.21 M, E3VA paper Table 1: 1.20 M); Swin-L with
    ``hidden_dims=64`` (the Swin-L configs): 1,310,592 (1.31 M).

    Args:
        hidden_ratio (float): bottleneck width / block width. Defaults to 0.5.
        hidden_dims (int, optional): fixed bottleneck width, overrides the ratio.
        rank (int): rank of every low-rank factor. Defaults to 8.
        num_branches (int): low-rank products summed per weight. Defaults to 2.
    """

    name = 'lorand'

    def __init__(self, hidden_ratio: float = 0.5, hidden_dims: Optional[int] = None,
                 rank: int = 8, num_branches: int = 2):
        super().__init__()
        check_option('LoRand', 'hidden_ratio', hidden_ratio)
        check_option('LoRand', 'hidden_dims', hidden_dims, integer=True, optional=True)
        check_option('LoRand', 'rank', rank, integer=True)
        check_option('LoRand', 'num_branches', num_branches, integer=True)
        self.adapter_args = dict(hidden_ratio=hidden_ratio, hidden_dims=hidden_dims, rank=rank,
                                 num_branches=num_branches)

    def make_adapter(self, block):
        return DualLowRankAdapter(block.width, channel_dim=block.channel_dim, **self.adapter_args)
