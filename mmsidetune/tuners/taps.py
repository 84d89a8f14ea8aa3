"""Taps: read the outputs of unmodified upstream sub-modules with forward hooks.

The side-tuning methods read a frozen trunk without changing its code: E3VA reads each block's
branch outputs (docs/e3va.md), M2IST the encoders' attention and FFN outputs (docs/m2ist.md).
Adapters that *change* a sub-module's output are attached by :mod:`.layers.injection`.
"""
import functools
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

__all__ = ['TapRecorder']


def _first(output):
    """The tensor of a module output that may be a tuple (``nn.MultiheadAttention``)."""
    return output[0] if isinstance(output, tuple) else output


class TapRecorder(nn.Module):
    """Records the outputs of chosen sub-modules while :meth:`record` is open.

    It holds no parameter; it is an ``nn.Module`` only so that the hooks (bound methods of the
    recorder) follow the model through ``copy.deepcopy``.
    """

    def __init__(self):
        super().__init__()
        self._store: Dict[str, torch.Tensor] = {}
        self._active = False
        self._picks: Dict[str, Callable] = {}

    def add(self, module: nn.Module, key: str, pick: Callable = _first) -> RemovableHandle:
        """Record ``pick(output)`` of ``module`` under ``key`` (first tensor of the output by
        default). Returns the hook's handle (the method keeps it: ``unload()`` removes it)."""
        self._picks[key] = pick
        return module.register_forward_hook(functools.partial(self._hook, key))

    def _hook(self, key, module, args, output):
        if self._active:
            self._store[key] = self._picks[key](output)

    @contextmanager
    def record(self, enabled: bool = True) -> Iterator[Dict[str, torch.Tensor]]:
        """Open a recording; yields the dict the taps land in (key -> tensor).

        The recorder lets go of that dict when the recording closes: the taps live exactly as
        long as the caller (and autograd, for backward) holds them, never until the next batch.
        """
        self._store = {}
        self._active = enabled
        try:
            yield self._store
        finally:
            self._active = False
            self._store = {}

    def taps(self, store: Dict[str, torch.Tensor], prefix: str, num: int) -> List[torch.Tensor]:
        """``[store[f'{prefix}{i}'] for i < num]``; a clear error for a tap that never fired."""
        missing = [i for i in range(num) if f'{prefix}{i}' not in store]
        if missing:
            raise RuntimeError(f'taps {prefix}{missing} were not recorded: the hooked sub-modules '
                               'did not run (changed encoder structure?)')
        return [store[f'{prefix}{i}'] for i in range(num)]
