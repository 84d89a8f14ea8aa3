"""AdaptFormer baseline (Chen et al., NeurIPS 2022) on a frozen Swin trunk; SPEC.md section 1."""
from typing import List

import torch.nn as nn
from mmengine.model import ModuleList

from ..adapters import BottleneckAdapter, add_parallel_adapter
from .tuned_swin import TunedSwinTransformer, register_tuned_swin

__all__ = ['AdaptFormerSwinTransformer']


@register_tuned_swin('adaptformer')
class AdaptFormerSwinTransformer(TunedSwinTransformer):
    """Swin with AdaptFormer's parallel, scaled bottleneck beside every block's MLP.

    ::

        x' ──norm2──► u ──► MLP(u) + s * up(ReLU(down(u))) ──(+ x')──► x_next

    A forward hook on ``block.ffn.layers`` adds the :class:`~mmsidetune.adapters.BottleneckAdapter`
    branch (``up`` zero at init, so the output equals the frozen trunk's). Gradients cross the
    frozen trunk (it runs with autograd, in eval mode).

    Trainable backbone parameters: ``2 d h + h + d`` per block plus the output norms ``2 * d_i``
    (counted, as for E3VA). With ``h = 128``: Swin-B 3,095,296 + 3,840 = 3,099,136 (3.10 M,
    SPEC 3.11 M); Swin-L 4,641,408 + 5,760 = 4,647,168 (4.65 M, SPEC 4.66 M). AdaptFormer's own
    default is ``h = 64``; the published budgets (equal to Adapter's two bottleneck-64 modules per
    block) imply one 128-wide bottleneck per block, our reading.

    Args:
        adapter_hidden_dims (int): Bottleneck width ``h``. Defaults to 128.
        adapter_scale (float): Scale ``s`` of the adapter branch. Defaults to 0.1 (AdaptFormer's).
        **kwargs: the arguments of mmdet's ``SwinTransformer``.
    """

    def __init__(self, adapter_hidden_dims: int = 128, adapter_scale: float = 0.1, **kwargs):
        self.adapter_hidden_dims = adapter_hidden_dims
        self.adapter_scale = adapter_scale
        super().__init__(**kwargs)

    def build_tuning_modules(self) -> None:
        self.adapters = ModuleList()
        for i, stage in enumerate(self.stages):
            stage_adapters = ModuleList()
            for block in stage.blocks:
                adapter = BottleneckAdapter(self.num_features[i], self.adapter_hidden_dims,
                                            act_layer=nn.ReLU, scale=self.adapter_scale)
                add_parallel_adapter(block.ffn.layers, adapter)
                stage_adapters.append(adapter)
            self.adapters.append(stage_adapters)

    def trainable_modules(self) -> List[nn.Module]:
        return [self.adapters] + self.out_norms()

    def reset_tuning_parameters(self) -> None:
        for stage_adapters in self.adapters:
            for adapter in stage_adapters:
                adapter.reset_parameters()
