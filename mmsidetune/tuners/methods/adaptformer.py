"""AdaptFormer (Chen et al., NeurIPS 2022): a scaled bottleneck beside every block's MLP."""
from ..layers import BottleneckAdapter, add_parallel_adapter
from ..registry import TUNING_METHODS
from .base import TuningMethod, check_option

__all__ = ['AdaptFormer']


@TUNING_METHODS.register_module()
class AdaptFormer(TuningMethod):
    """``MLP(u) + s * up(ReLU(down(u)))`` for every block's MLP input ``u`` (a forward hook on
    the MLP adds the :class:`~mmsidetune.tuners.layers.BottleneckAdapter` branch, ``up`` zero at
    init). Gradients cross the frozen trunk. Trainable: the adapters and the output norms.

    Parameters: ``2 d h + h + d`` per block. Swin-B with ``h = 128``: 3,095,296 plus output
    norms 3,840 = 3,099,136 (3.10 M; E3VA paper Table 1: 3.11 M, one 128-wide bottleneck per
    block is our reading of that budget); Swin-L: 4,647,168 (4.65 M).

    Args:
        hidden_dims (int): bottleneck width ``h``. Defaults to 128.
        scale (float): scale ``s`` of the adapter branch. Defaults to 0.1 (AdaptFormer's).
    """

    name = 'adaptformer'
    not_for = dict(resnet='a ResNet block has no MLP to run beside (AdaptFormer is defined for '
                   "transformer MLPs); use 'adapter' or 'lorand' on the residual branches")

    def __init__(self, hidden_dims: int = 128, scale: float = 0.1):
        super().__init__()
        check_option('AdaptFormer', 'hidden_dims', hidden_dims, integer=True)
        check_option('AdaptFormer', 'scale', scale)
        self.hidden_dims, self.scale = hidden_dims, scale

    def attach(self, family) -> None:
        super().attach(family)
        import torch.nn as nn

        def make(block):
            adapter = BottleneckAdapter(block.width, self.hidden_dims, act_layer=nn.ReLU,
                                        scale=self.scale)
            self.keep(add_parallel_adapter(block.mlp, adapter))
            return adapter

        self.per_block(family, make)
