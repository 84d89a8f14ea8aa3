"""Partial-1: fine-tune only the trunk's last block, everything before it frozen and run without
autograd (V-PETL Bench, Xin et al., NeurIPS 2024 Datasets and Benchmarks; the Mona code base,
Yin et al., CVPR 2025: docs/methods/partial.md)."""
import torch
import torch.nn as nn

from ..families import upstream_class
from ..registry import TUNING_METHODS
from .base import TuningMethod, check_option

__all__ = ['Partial']


class _GradFromHere:
    """Forward pre-hook of the first trained block: autograd starts here (the frozen prefix ran
    under ``torch.no_grad()``; the enclosing ``no_grad`` context restores the mode on exit)."""

    def __init__(self, method: 'Partial'):
        self.method = method

    def __call__(self, module, args):
        if self.method._grad_from_trained_part:
            torch.set_grad_enabled(True)


@TUNING_METHODS.register_module()
class Partial(TuningMethod):
    """Train the trunk's last ``num_blocks`` blocks in place; the rest of the trunk (stem,
    earlier blocks, output norms) is frozen and in eval mode.

    Definition: the Mona code base's ``SwinTransformer_partial_1`` trains exactly the parameters
    named ``layers.3.blocks.1`` (Swin's last block, its relative position table included; the
    output norms stay frozen): Swin-B 12,601,632 (V-PETL Bench: 12.60 M), Swin-L 28,339,632
    (28.34 M). The same rule for the other families: ResNet's last bottleneck (``layer4[-1]``),
    ViT's last encoder layer. ``num_blocks`` counts blocks backwards across stages
    (``num_blocks=2`` on Swin: the whole last stage).

    The frozen prefix runs under ``torch.no_grad()``: a forward pre-hook on the first trained
    block switches autograd on, so backward stops at that block's input (it keeps nothing of the
    prefix) and the prefix never builds a graph. The trained blocks are in ``train()`` mode with
    the model (DropPath as in full fine-tuning; BatchNorm follows the upstream ``norm_eval``).

    Args:
        num_blocks (int): trailing blocks to train. Defaults to 1 (Partial-1).

    Raises:
        ValueError: for ``num_blocks < 1`` or more blocks than the trunk has, or when the last
            stage is not an output (the trained blocks would reach no output).
    """

    name = 'partial-1'
    aliases = ('partial', )
    layers_name = None
    trains_output_norms = False

    def __init__(self, num_blocks: int = 1):
        super().__init__()
        check_option('Partial', 'num_blocks', num_blocks, integer=True)
        self.num_blocks = num_blocks
        self.name = f'partial-{num_blocks}'
        self.__dict__['_trained'] = []  # BlockSpecs of trunk blocks, not this method's layers
        self._grad_from_trained_part = False

    def attach(self, family) -> None:
        super().attach(family)
        blocks, kind = family.blocks(), upstream_class(family.module).__name__
        if self.num_blocks > len(blocks):
            raise ValueError(f'Partial: num_blocks={self.num_blocks} but the '
                             f'{kind} trunk has {len(blocks)} blocks')
        last = len(family.stages) - 1
        if last not in family.out_stages():
            raise ValueError(f'Partial: the last stage ({last}) of {kind} '
                             f'is not an output (out_indices {family.out_stages()}): the trained '
                             'last blocks would reach no output; add it to out_indices')
        self.__dict__['_trained'] = blocks[-self.num_blocks:]
        self.keep(self._trained[0].module.register_forward_pre_hook(_GradFromHere(self)))

    def trunk_parameters(self, family):
        return [p for block in self._trained for p in block.module.parameters()]

    def train_trunk_part(self, family, mode: bool) -> None:
        norm_eval = mode and getattr(family.module, 'norm_eval', False)
        for block in self._trained:
            block.module.train(mode)
            if norm_eval:  # as mmdet/mmseg ResNet.train(): BatchNorm statistics stay fixed
                for m in block.module.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()

    def forward(self, family, x: torch.Tensor):
        """The upstream forward, the frozen prefix under ``torch.no_grad()``."""
        if not torch.is_grad_enabled():
            return family.upstream_forward(x)
        self._grad_from_trained_part = True
        try:
            with torch.no_grad():
                return family.upstream_forward(x)
        finally:
            self._grad_from_trained_part = False
