"""LoRA baseline (Hu et al., ICLR 2022) on a frozen Swin trunk; SPEC.md section 1."""
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.model import ModuleDict, ModuleList

from ..adapters import LoRAUpdate, add_parallel_adapter
from .tuned_swin import TunedSwinTransformer, register_tuned_swin

__all__ = ['LoRASwinTransformer']


@register_tuned_swin('lora')
class LoRASwinTransformer(TunedSwinTransformer):
    """Swin with rank-``r`` LoRA updates on the attention's ``qkv`` and ``proj`` linear layers.

    Every targeted frozen ``nn.Linear`` ``W`` of ``block.attn.w_msa`` returns
    ``W x + b + (alpha / r) B A x`` (a forward hook adds :class:`~mmsidetune.adapters.LoRAUpdate`;
    the trunk's code and state-dict keys are untouched). ``B`` is zero at init, so the output equals
    the frozen trunk's. Gradients cross the frozen trunk (it runs with autograd, in eval mode).

    Trainable backbone parameters: ``r * (d + 3 d)`` (qkv, fused) ``+ r * (d + d)`` (proj)
    ``= 6 r d`` per block, plus the output norms ``2 * d_i`` (counted, as for E3VA).
    With ``r = 42``:
    Swin-B 3,032,064 + 3,840 = 3,035,904 (3.04 M, SPEC 3.03 M);
    Swin-L 4,548,096 + 5,760 = 4,553,856 (4.55 M, SPEC 4.57 M). The papers do not state the rank;
    42 is the rank that meets the published budgets on both trunks.

    Args:
        lora_rank (int): Rank ``r``. Defaults to 42.
        lora_alpha (float, optional): Scale numerator; None gives scale 1. Defaults to None.
        lora_targets (Sequence[str]): Linear layers of ``w_msa`` to adapt, from ``('qkv', 'proj')``.
        **kwargs: the arguments of mmdet's ``SwinTransformer``.

    Raises:
        ValueError: for an empty ``lora_targets`` or a target other than ``qkv`` / ``proj``.
    """

    TARGETS = ('qkv', 'proj')

    def __init__(self,
                 lora_rank: int = 42,
                 lora_alpha: Optional[float] = None,
                 lora_targets: Sequence[str] = TARGETS,
                 **kwargs):
        bad = [t for t in lora_targets if t not in self.TARGETS]
        if bad or not lora_targets:
            raise ValueError(f'LoRASwinTransformer: lora_targets must be a non-empty subset of '
                             f'{self.TARGETS}, got {list(lora_targets)}')
        self.lora_rank, self.lora_alpha = lora_rank, lora_alpha
        self.lora_targets = tuple(lora_targets)
        super().__init__(**kwargs)

    def build_tuning_modules(self) -> None:
        self.lora = ModuleList()
        for stage in self.stages:
            stage_updates = ModuleList()
            for block in stage.blocks:
                updates = ModuleDict()
                for name in self.lora_targets:
                    linear = getattr(block.attn.w_msa, name)
                    updates[name] = LoRAUpdate(linear.in_features, linear.out_features,
                                               self.lora_rank, self.lora_alpha)
                    add_parallel_adapter(linear, updates[name])
                stage_updates.append(updates)
            self.lora.append(stage_updates)

    def trainable_modules(self) -> List[nn.Module]:
        return [self.lora] + self.out_norms()

    def reset_tuning_parameters(self) -> None:
        for stage_updates in self.lora:
            for updates in stage_updates:
                for update in updates.values():
                    update.reset_parameters()
