"""Shared base of the serial in-stream adapters (Adapter, LoRand): one adapter after the attention
and one after the MLP of every Swin block, inside the residual stream.

::

    x ─norm1─► W-MSA ─► a ─► a + A_attn(a) ─(+x)─► x' ─norm2─► MLP ─► m ─► m + A_mlp(m) ─(+x')─►

The adapters are attached with forward hooks on ``block.attn`` and ``block.ffn.layers`` (mmdet's
code is not copied; the trunk's state-dict keys are unchanged). The loss gradient reaches each
adapter through the frozen blocks after it, so backward stores the trunk's activations (the memory
cost E3VA removes).
"""
from typing import List

import torch.nn as nn
from mmengine.model import ModuleDict, ModuleList

from ..adapters import add_serial_adapter
from .tuned_swin import TunedSwinTransformer

__all__ = ['SerialAdapterSwinTransformer']


class SerialAdapterSwinTransformer(TunedSwinTransformer):
    """Swin with a serial adapter after attention and after MLP in every block (abstract).

    Subclasses implement :meth:`build_branch_adapter`. Trainable: the adapters
    (``adapters.{stage}.{block}.{attn,mlp}``) and the output norms ``norm{i}``; the trunk is
    frozen in ``__init__`` and kept in eval mode (no DropPath), but runs *with* autograd.

    Shapes:
        ``(B, 3, H, W)`` -> list of ``(B, C_i, H / s_i, W / s_i)`` for ``i`` in ``out_indices``.
    """

    def build_branch_adapter(self, embed_dims: int) -> nn.Module:
        """One adapter ``(..., d) -> (..., d)`` that outputs zero at initialisation."""
        raise NotImplementedError

    def build_tuning_modules(self) -> None:
        self.adapters = ModuleList()
        for i, stage in enumerate(self.stages):
            stage_adapters = ModuleList()
            for block in stage.blocks:
                pair = ModuleDict(dict(attn=self.build_branch_adapter(self.num_features[i]),
                                       mlp=self.build_branch_adapter(self.num_features[i])))
                add_serial_adapter(block.attn, pair['attn'])
                add_serial_adapter(block.ffn.layers, pair['mlp'])
                stage_adapters.append(pair)
            self.adapters.append(stage_adapters)

    def trainable_modules(self) -> List[nn.Module]:
        return [self.adapters] + self.out_norms()

    def reset_tuning_parameters(self) -> None:
        for stage_adapters in self.adapters:
            for pair in stage_adapters:
                for adapter in pair.values():
                    adapter.reset_parameters()
