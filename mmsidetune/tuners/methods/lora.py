"""LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022)."""
from typing import Optional, Sequence

from mmengine.model import ModuleDict

from ..layers import LoRAUpdate, add_parallel_adapter, add_weight_update
from ..registry import TUNING_METHODS
from .base import TuningMethod, check_option

__all__ = ['LoRA']


@TUNING_METHODS.register_module()
class LoRA(TuningMethod):
    """Rank-``r`` updates ``W x + b + (alpha / r) B A x`` on the blocks' frozen weights
    (:class:`~mmsidetune.tuners.layers.LoRAUpdate`, ``B`` zero at init, so the output equals the
    frozen trunk's): an ``nn.Linear`` gets the update from a forward hook; a weight its module
    reads as a tensor (``nn.MultiheadAttention``'s) is parametrized to ``W + (alpha / r) B A``
    (:func:`~mmsidetune.tuners.layers.add_weight_update`, the module's code and state-dict keys
    unchanged). Gradients cross the frozen trunk. Trainable: the updates and the output norms.
    ``tools/model_converters/merge_lora.py`` folds them into the trunk weights for export.

    Targets per family (docs/backbones.md): Swin ``qkv`` and ``proj`` of ``attn.w_msa`` (default
    both: ``6 r d`` per block; with ``r = 42`` Swin-B 3,035,904 with output norms, 3.04 M,
    Swin-L 4,553,856); ViT the attention's ``q``, ``k``, ``v`` (rows of the fused
    ``in_proj_weight``), ``out`` (``out_proj``) and the MLP's ``fc1``, ``fc2`` (default ``q`` and
    ``v``, as the LoRA paper, section 7.1, and PEFT's ViT defaults: ``4 r d`` per layer).

    Args:
        rank (int): rank ``r``. Defaults to 42 (the rank that meets the E3VA paper's LoRA
            budgets on Swin-B and Swin-L; the paper does not state it).
        alpha (float, optional): scale numerator (finite, > 0); None gives scale 1.
        targets (sequence of str, optional): names of the family's linears and weights to
            adapt; None: the family's default (:attr:`DEFAULT_TARGETS`, else all linears).

    Raises:
        ValueError: for an empty ``targets`` or a name the family's blocks do not have; for a
            ``rank`` that is not a positive integer or an ``alpha`` that is not finite and > 0.
    """

    name = 'lora'
    layers_name = 'lora'
    #: family name -> default targets (other families: all their linears)
    DEFAULT_TARGETS = dict(vit=('q', 'v'))
    not_for = dict(resnet='a ResNet has no linear layers in its blocks (LoRA on convolution '
                   'kernels is another method)')

    def __init__(self, rank: int = 42, alpha: Optional[float] = None,
                 targets: Optional[Sequence[str]] = None):
        super().__init__()
        if targets is not None and not list(targets):
            raise ValueError('LoRA: targets must name at least one linear layer')
        check_option('LoRA', 'rank', rank, integer=True)
        # alpha = 0 scales the update by 0: no LoRA tensor would ever get a gradient
        check_option('LoRA', 'alpha', alpha, optional=True)
        self.rank, self.alpha = rank, alpha
        self.targets = None if targets is None else tuple(targets)

    def attach(self, family) -> None:
        super().attach(family)
        first = family.stages[0][0]
        known = list(first.linears) + list(first.weights)
        targets = self.targets or self.DEFAULT_TARGETS.get(family.name) or tuple(first.linears)
        bad = [t for t in targets if t not in known]
        if bad:
            raise ValueError(f'LoRA: targets must be a subset of {known} for the {family.name} '
                             f'family, got {list(targets)}')

        def make(block):
            updates = ModuleDict()
            for name in targets:
                if name in block.linears:
                    linear = block.linears[name]
                    updates[name] = LoRAUpdate(linear.in_features, linear.out_features,
                                               self.rank, self.alpha)
                    self.keep(add_parallel_adapter(linear, updates[name]))
                    continue
                module, param, rows = block.weights[name]
                out_features, in_features = getattr(module, param).shape
                if rows is not None:
                    start, stop, _ = rows.indices(out_features)
                    out_features = stop - start
                updates[name] = LoRAUpdate(in_features, out_features, self.rank, self.alpha)
                self.keep(add_weight_update(module, param, updates[name], rows))
            return updates

        self.per_block(family, make)
