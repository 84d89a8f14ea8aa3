"""The base class of every tuning method: its layers plus where they attach.

A method is an mmengine ``ModuleList`` of its layers, stage by stage and block by block, so its
state-dict keys read ``<layers_name>.<stage>.<block>.<branch>...`` (e.g.
``highway.2.5.attn.down.P``). :meth:`TuningMethod.attach` creates the layers for a
:class:`~mmsidetune.tuners.families.BackboneFamily` and attaches them to the unmodified upstream
modules with forward hooks; :meth:`TuningMethod.forward` runs the backbone. Freezing, eval mode,
weights and the summary line belong to :class:`~mmsidetune.tuners.TunedBackbone` (docs/tuners.md).
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import ModuleList

__all__ = ['TuningMethod', 'ACTIVATIONS', 'check_option']

#: Activation names accepted by the adapter methods' ``act`` option.
ACTIVATIONS = {'GELU': nn.GELU, 'ReLU': nn.ReLU}


def check_option(owner: str, name: str, value, integer: bool = False,
                 optional: bool = False) -> None:
    """Refuse a numeric method option that is not a finite positive number (a positive integer
    with ``integer``; None allowed with ``optional``): zero widths, ranks or scales make a method
    train nothing, NaN / inf make every step non-finite.

    Raises:
        ValueError: naming ``owner``'s option ``name`` and the value.
    """
    if value is None and optional:
        return
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        kind = 'a positive integer'
    else:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and value > 0)
        kind = 'a finite number > 0'
    if not ok:
        raise ValueError(f'{owner}: {name} must be {kind}{" or None" if optional else ""}, '
                         f'got {value!r}')


class TuningMethod(ModuleList):
    """A tuning method (abstract): its layers (this list) and their tap/injection spec.

    Attributes:
        name (str): short name used by bench and the logs (``'e3va'``).
        aliases (tuple[str]): other short names :func:`~mmsidetune.tuners.method_class` accepts
            (``'partial'`` for ``'partial-1'``).
        layers_name (str, optional): attribute under which a model holds the layers (the
            state-dict prefix: ``'highway'``, ``'adapters'``, ``'lora'``); None for a method
            without layers.
        freezes_trunk (bool): every trunk parameter is frozen and the trunk kept in eval mode.
        trains_output_norms (bool): the family's output norms stay trainable.
        trunk_dtype (torch.dtype): the dtype the frozen trunk is held in.
        not_for (dict): family name -> why the method does not apply to it.
        for_backbones (bool): offered for mmdet/mmseg backbones (False: another model's method,
            e.g. M2IST's side network for the grounder).
    """

    name = ''
    aliases: Tuple[str, ...] = ()
    layers_name: Optional[str] = 'adapters'
    freezes_trunk = True
    trains_output_norms = True
    trunk_dtype = torch.float32
    not_for: Dict[str, str] = {}
    for_backbones = True

    @classmethod
    def applicable(cls, family_cls) -> Optional[str]:
        """None if the method applies to the family, else the reason it does not."""
        return cls.not_for.get(getattr(family_cls, 'name', ''))

    def attach(self, family) -> None:
        """Create the layers for ``family``'s blocks and attach them (default: none).

        Raises:
            ValueError: if the method does not apply to the family (the reason is given).
        """
        reason = self.applicable(type(family))
        if reason:
            raise ValueError(f'{type(self).__name__} does not apply to the {family.name} family: '
                             f'{reason}')

    def keep(self, handle):
        """Keep a handle of what :meth:`attach` registered on the trunk (a forward hook's
        ``RemovableHandle``, :func:`~mmsidetune.tuners.layers.add_weight_update`'s handle), so
        :meth:`detach` can remove it. Returns ``handle``."""
        self.__dict__.setdefault('_handles', []).append(handle)
        return handle

    def detach(self) -> None:
        """Remove every hook and parametrization :meth:`attach` registered (last first); the
        trunk modules compute their upstream outputs again. The layers stay in this list."""
        handles = self.__dict__.get('_handles', [])
        while handles:
            handles.pop().remove()

    def trunk_parameters(self, family) -> List[nn.Parameter]:
        """Trunk parameters this method trains in place (default: none; the trunk is frozen)."""
        return []

    def train_trunk_part(self, family, mode: bool) -> None:
        """Called by ``TunedBackbone.train()`` after the trunk is put in eval mode: a method that
        trains part of the trunk puts that part in ``mode`` (default: nothing)."""

    def forward(self, family, x: torch.Tensor):
        """Run the backbone (default: the upstream forward, with the attached hooks)."""
        return family.upstream_forward(x)

    def per_block(self, family, make) -> None:
        """Fill this list with ``make(block)`` for every block of ``family``, stage by stage."""
        for stage in family.stages:
            self.append(ModuleList([make(block) for block in stage]))
