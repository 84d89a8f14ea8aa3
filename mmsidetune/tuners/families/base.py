"""What a tuning method needs to know about a backbone family, and nothing else.

A :class:`BackboneFamily` wraps one built upstream backbone (mmdet's or mmseg's ``SwinTransformer``,
``ResNet``, mmseg's ``VisionTransformer``) without changing it, and describes:

* its blocks, stage by stage (:class:`BlockSpec`): the sub-modules whose outputs are the blocks'
  *branch outputs* (before their residual adds), the MLP a parallel adapter sits beside, the
  ``nn.Linear`` layers LoRA may adapt, the projection shortcut;
* the output norms a tuning method trains (Swin's ``norm{i}``, ViT's final norm);
* for E3VA's gradient highway (docs/e3va.md): the stem, one call of each unmodified stage, how
  a stage's output is formed from the highway state and how the highway crosses a downsampling.

Families are found by :func:`find_family` from the built module or from a config's type name.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

__all__ = ['BlockSpec', 'BackboneFamily', 'BACKBONE_FAMILIES', 'register_family', 'find_family',
           'family_for_type', 'call_in_dtype', 'upstream_class', 'trunk_state']


@dataclass
class BlockSpec:
    """One unmodified upstream block, as the tuning methods see it.

    Attributes:
        module: the block.
        width: channels ``d`` of its input and output stream.
        branches: name -> sub-module whose output is a branch output ``u`` before the residual add
            (``x + u``): E3VA taps it, serial adapters add ``A(u)`` to it.
        mlp: the MLP (``(..., d) -> (..., d)``) AdaptFormer's adapter runs beside, or None.
        linears: name -> ``nn.Linear`` LoRA may adapt.
        weights: name -> ``(module, parameter name, rows)``: frozen weights LoRA may adapt that
            their module reads as tensors, not by calling a layer (``nn.MultiheadAttention``'s
            fused q/k/v rows of ``in_proj_weight``); ``rows`` a slice or None for all.
        shortcut: the projection shortcut of a residual block whose identity path changes shape
            (ResNet's first block of a stage), None for an identity shortcut.
        channel_dim: dimension of ``d`` in a branch output (-1 tokens, 1 feature maps).
        clone_taps: the block changes a branch output in place after it is produced (ResNet's
            ``out += identity``), so a tap must copy it.
    """

    module: nn.Module
    width: int
    branches: Dict[str, nn.Module]
    mlp: Optional[nn.Module] = None
    linears: Dict[str, nn.Linear] = field(default_factory=dict)
    weights: Dict[str, Tuple[nn.Module, str, Optional[slice]]] = field(default_factory=dict)
    shortcut: Optional[nn.Module] = None
    channel_dim: int = -1
    clone_taps: bool = False


class BackboneFamily:
    """A backbone family's description for the tuning methods (abstract).

    Args:
        module: the built upstream backbone (not modified).

    Attributes:
        name (str): family name (``'swin'``, ``'resnet'``, ``'vit'``).
        upstream_types (tuple[str]): registry type names of the family's backbones (config
            matching, e.g. ``'mmdet.SwinTransformer'``).
        stages (list[list[BlockSpec]]): the blocks, stage by stage.
    """

    name = ''
    upstream_types: Tuple[str, ...] = ()

    def __init__(self, module: nn.Module):
        self.module = module
        self.stages: List[List[BlockSpec]] = self.build_stages()

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        """Whether ``module`` (plain or tuned: its upstream class counts) belongs to this
        family; asked by :func:`find_family` for the registered families."""
        raise NotImplementedError

    def build_stages(self) -> List[List[BlockSpec]]:
        """The blocks of :attr:`stages`, stage by stage (rebuilt when the core moves hooks)."""
        raise NotImplementedError

    def blocks(self) -> List[BlockSpec]:
        """All blocks, in forward order."""
        return [b for stage in self.stages for b in stage]

    def output_norms(self) -> List[nn.Module]:
        """Norms applied to the outputs only (``(..., C_i) -> (..., C_i)``, trained by the
        adapter methods). Default: none."""
        return []

    def out_stages(self) -> List[int]:
        """Stage indices that produce an output, ascending (the upstream ``out_indices``)."""
        raise NotImplementedError

    def check_frozen(self, method_name: str) -> None:
        """Refuse upstream options that contradict a frozen trunk (``frozen_stages``)."""
        frozen = getattr(self.module, 'frozen_stages', -1)
        if frozen not in (-1, None):
            kind = upstream_class(self.module).__name__
            raise ValueError(f'{method_name} freezes the whole {kind} '
                             f'trunk already; remove frozen_stages={frozen} from the backbone '
                             'config')

    # ------------------------------------------------------------- E3VA's highway protocol
    def stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, object]:
        """The frozen layers before the first stage: image ``(B, 3, H, W)`` -> (stream, context)."""
        raise NotImplementedError

    def run_stage(self, i: int, x: torch.Tensor, ctx) -> Tuple[torch.Tensor, object, torch.Tensor,
                                                                    object]:
        """Run stage ``i`` unmodified: -> (next stage's input, its context, this stage's output
        stream before any downsampling, its context)."""
        raise NotImplementedError

    def stage_output(self, i: int, h: torch.Tensor, ctx) -> Optional[torch.Tensor]:
        """The backbone output of stage ``i`` formed from stream ``h`` (None if ``i`` has none)."""
        raise NotImplementedError

    def has_transition(self, i: int) -> bool:
        """Whether stage ``i`` ends with a downsampling the highway must cross."""
        return False

    def transition(self, i: int, h: torch.Tensor, ctx) -> Optional[torch.Tensor]:
        """The highway across stage ``i``'s downsampling (stream of stage ``i`` -> stream of
        stage ``i + 1``, e.g. Swin ``(B, HW, C) -> (B, HW / 4, 2 C)``); None when the stage has
        none."""
        return None

    def highway_step(self, block: BlockSpec, h: torch.Tensor, taps: Dict[str, torch.Tensor],
                     update: torch.Tensor) -> torch.Tensor:
        """One block on the highway: the block's own residual sum with the highway state ``h``
        in place of its input, plus the adapters' ``update``. Default (pre-norm transformer
        blocks, ``x + a + m``): ``((h + a) + m) + update``, the trunk's addition order, so ``h``
        stays bitwise the trunk's stream while ``update`` is zero."""
        for name in block.branches:
            h = h + taps[name]
        return h + update

    def output_format(self, outs: List[torch.Tensor]):
        """The upstream forward's return type for ``outs`` (a tuple for mmdet/mmseg)."""
        return tuple(outs)

    # ------------------------------------------------------------- the trunk
    def upstream_forward(self, x):
        """The upstream backbone's own forward of ``x`` (the sub-modules' hooks run, the tuned
        backbone's ``forward`` does not): image ``(B, 3, H, W)`` -> the upstream outputs."""
        return upstream_class(self.module).forward(self.module, x)

    def trunk(self) -> List[nn.Module]:
        """The trunk's sub-modules (the module's children but the method's layers): what a
        frozen trunk keeps in eval mode."""
        return [m for m in self.module.children() if not _is_method(m)]

    def trunk_parameters(self) -> List[nn.Parameter]:
        """Every parameter of the trunk (the module's own ones included, e.g. ViT's
        ``cls_token``), the output norms included, the method's layers excluded."""
        own = [p for p in self.module._parameters.values() if p is not None]
        return own + [p for m in self.trunk() for p in m.parameters()]

    def frozen_tensors(self) -> List[torch.Tensor]:
        """The trunk's parameters and buffers, the output norms excluded: what the core casts
        to the method's ``trunk_dtype``."""
        skip = set(t for m in self.output_norms() for t in list(m.parameters()) + list(m.buffers()))
        own = [b for b in self.module._buffers.values() if b is not None]
        tensors = self.trunk_parameters() + own + [b for m in self.trunk() for b in m.buffers()]
        return [t for t in tensors if t not in skip]

    def convert_checkpoint(self, state: Dict[str, torch.Tensor],
                           own: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Map a checkpoint's trunk weights (``backbone.`` and DDP's ``module.`` prefixes
        already stripped) to the module's keys and shapes; ``own`` is the module's trunk state
        dict. Default: as they are. Swin converts the official release's layout and resizes
        position tables. Called by the core's one pretrained loader
        (:meth:`~mmsidetune.tuners.TunedBackbone.init_weights`)."""
        return state


def _is_method(module: nn.Module) -> bool:
    from ..methods.base import TuningMethod
    return isinstance(module, TuningMethod)


def trunk_state(checkpoint: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The backbone weights of a loaded checkpoint file.

    The file's ``state_dict`` (mmengine), ``model`` (official releases) or the dict itself; DDP's
    ``module.`` key prefix removed (mmengine's ``revise_keys`` default); a detector's or
    segmentor's ``backbone.*`` keys, without the prefix, when it has any.
    """
    state = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    state = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state.items())
    if any(k.startswith('backbone.') for k in state):
        state = OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                            if k.startswith('backbone.'))
    return state


def upstream_class(module: nn.Module) -> type:
    """The upstream backbone class of ``module`` (``module``'s own class when not tuned)."""
    return getattr(type(module), '_upstream', None) or type(module)


#: Family classes, asked in registration order.
BACKBONE_FAMILIES: List[type] = []


def register_family(cls: type) -> type:
    BACKBONE_FAMILIES.append(cls)
    return cls


def find_family(module: nn.Module) -> BackboneFamily:
    """The :class:`BackboneFamily` of a built backbone.

    Raises:
        TypeError: if no family matches (the supported ones are listed).
    """
    for cls in BACKBONE_FAMILIES:
        if cls.matches(module):
            return cls(module)
    raise TypeError(f'{type(module).__module__}.{type(module).__name__} is not a backbone family '
                    f'mmsidetune can tune; supported: '
                    f'{[t for c in BACKBONE_FAMILIES for t in c.upstream_types]} '
                    '(docs/backbones.md)')


def family_for_type(type_name: str) -> Optional[type]:
    """The family class whose ``upstream_types`` contain a config ``type`` name (None if none)."""
    for cls in BACKBONE_FAMILIES:
        if type_name in cls.upstream_types:
            return cls
    return None


def call_in_dtype(module: nn.Module, dtype: torch.dtype, *args):
    """``module(*args)`` with its floating parameters in ``dtype`` (copies, when the module is
    held in another dtype, e.g. a bfloat16 trunk applied to the float32 highway)."""
    if all(p.dtype == dtype for p in module.parameters()):
        return module(*args)
    params: Dict[str, Optional[torch.Tensor]] = {
        n: p.to(dtype) for n, p in module.named_parameters()}
    buffers = {n: b.to(dtype) if b.is_floating_point() else b for n, b in module.named_buffers()}
    return torch.func.functional_call(module, {**params, **buffers}, args)
