"""Add a trainable update to a frozen weight that its module reads as a tensor, not through a
layer's forward (``nn.MultiheadAttention``'s fused ``in_proj_weight`` and its ``out_proj.weight``,
both read by ``F.multi_head_attention_forward``, so no forward hook can adapt them).

:func:`add_weight_update` registers a ``torch.nn.utils.parametrize`` parametrization: reading
``module.<name>`` gives ``W + delta`` with the update's ``delta_weight()`` in chosen rows (e.g.
the q rows ``[0, d)`` of ``in_proj_weight``). The upstream module's code is not changed; its
state-dict keys stay ``<name>`` (state-dict hooks map them to and from parametrize's
``parametrizations.<name>.original``), so pretrained weights load and save in the upstream
layout. The updates are held by reference, not as sub-modules: their parameters belong to the
tuning method (``lora.*`` keys). docs/methods/lora.md.
"""
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

__all__ = ['add_weight_update', 'weight_updates', 'frozen_weight']


class _RowUpdates(nn.Module):
    """Parametrization ``W -> W + delta`` with each update's ``delta_weight()`` (rows, in) added
    to its rows ``[start, stop)`` of ``W``. Holds the updates by reference (no parameters of its
    own)."""

    def __init__(self):
        super().__init__()
        self.__dict__['entries'] = []  # [(start, stop, update)]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        for start, stop, update in self.entries:
            delta = update.delta_weight().to(weight.dtype)
            weight = weight + F.pad(delta, (0, 0, start, weight.shape[0] - stop))
        return weight


def _save_upstream_key(name: str):
    original = f'parametrizations.{name}.original'

    def hook(module, state_dict, prefix, local_metadata):
        keys = [k for k in state_dict if k.startswith(prefix)]
        moved = [(k, state_dict.pop(k)) for k in keys]
        for k, v in moved:
            state_dict[prefix + name if k == prefix + original else k] = v
        return state_dict

    return hook


def _load_upstream_key(name: str):
    original = f'parametrizations.{name}.original'

    def hook(module, state_dict, prefix, *args):
        if prefix + name in state_dict:
            state_dict[prefix + original] = state_dict.pop(prefix + name)

    return hook


class WeightUpdateHandle:
    """Removes one update of :func:`add_weight_update`; the last one removed also removes the
    parametrization (``module.<name>`` is the stored frozen parameter again, with its value)
    and its state-dict hooks."""

    def __init__(self, module: nn.Module, name: str, entry: tuple, hooks: list):
        self.module, self.name, self.entry, self.hooks = module, name, entry, hooks

    def remove(self) -> None:
        if not parametrize.is_parametrized(self.module, self.name):
            return
        holder = next(p for p in self.module.parametrizations[self.name]
                      if isinstance(p, _RowUpdates))
        if any(e is self.entry for e in holder.entries):
            holder.entries.remove(self.entry)
        if not holder.entries:
            parametrize.remove_parametrizations(self.module, self.name, leave_parametrized=False)
            for hook in self.hooks:
                hook.remove()


def add_weight_update(module: nn.Module, name: str, update: nn.Module,
                      rows: Optional[slice] = None) -> WeightUpdateHandle:
    """Make ``module.<name>`` read ``W + update.delta_weight()`` (in ``rows`` of ``W``).

    Args:
        module: the module owning the frozen parameter ``name`` (``(out, in)``).
        name: the parameter's name (``'in_proj_weight'``, ``'weight'``).
        update: a module with ``delta_weight() -> (rows, in)`` (e.g.
            :class:`~mmsidetune.tuners.layers.LoRAUpdate`).
        rows: the rows of ``W`` the update adds to (None: all).

    Returns:
        WeightUpdateHandle: ``remove()`` takes the update off again.

    Raises:
        ValueError: if the update's shape does not fit the rows, or the rows overlap an update
            already attached.
    """
    weight = frozen_weight(module, name)
    start, stop, _ = (rows or slice(None)).indices(weight.shape[0])
    shape = tuple(update.delta_weight().shape)
    if shape != (stop - start, weight.shape[1]):
        raise ValueError(f'add_weight_update: an update of shape {shape} does not fit rows '
                         f'[{start}, {stop}) of {type(module).__name__}.{name} '
                         f'{tuple(weight.shape)}')
    if not parametrize.is_parametrized(module, name):
        parametrize.register_parametrization(module, name, _RowUpdates(), unsafe=True)
        holder = next(p for p in module.parametrizations[name] if isinstance(p, _RowUpdates))
        holder.__dict__['hooks'] = [
            module._register_state_dict_hook(_save_upstream_key(name)),
            module._register_load_state_dict_pre_hook(_load_upstream_key(name), with_module=True)]
    holder = next(p for p in module.parametrizations[name] if isinstance(p, _RowUpdates))
    if any(a < stop and start < b for a, b, _ in holder.entries):
        raise ValueError(f'add_weight_update: rows [{start}, {stop}) of '
                         f'{type(module).__name__}.{name} already have an update')
    entry = (start, stop, update)
    holder.entries.append(entry)
    return WeightUpdateHandle(module, name, entry, holder.hooks)


def frozen_weight(module: nn.Module, name: str) -> torch.Tensor:
    """The stored parameter ``name`` of ``module`` (parametrize's ``original`` when adapted)."""
    if parametrize.is_parametrized(module, name):
        return module.parametrizations[name].original
    return getattr(module, name)


def weight_updates(module: nn.Module, name: str) -> List[tuple]:
    """``[(start, stop, update)]`` (rows ``[start, stop)``) attached to ``module.<name>`` by
    :func:`add_weight_update`."""
    if not parametrize.is_parametrized(module, name):
        return []
    return [e for p in module.parametrizations[name] if isinstance(p, _RowUpdates)
            for e in p.entries]
