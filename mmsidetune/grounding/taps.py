"""Forward-hook taps on frozen encoders: read sub-module outputs, or add a serial adapter to them.

Both encoders stay unmodified (mmdet's DETR encoder layers, transformers' ``BertLayer``): the
M2IST taps (SPEC.md section 2, "Taps") are read by forward hooks, and the plain adapter-tuning
baseline adds its bottleneck adapters with forward hooks that *replace* a sub-module's output.
"""
import functools
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List

import torch
import torch.nn as nn

__all__ = ['TapRecorder', 'SerialAdapter', 'attach_serial_adapter']


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

    def add(self, module: nn.Module, key: str, pick: Callable = _first) -> None:
        """Record ``pick(output)`` of ``module`` under ``key`` (first tensor of the output by
        default)."""
        self._picks[key] = pick
        module.register_forward_hook(functools.partial(self._hook, key))

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


class SerialAdapter(nn.Module):
    """Bottleneck adapter used in series inside a frozen stream: ``x + W_up ReLU(W_down x)``.

    The plain adapter-tuning baseline of M2IST (paper Fig. 3b): gradients of these adapters pass
    back through the frozen encoder layers that follow them.

    Args:
        dims (int): channels C of the tapped tensor (..., C).
        bottleneck (int): hidden width of the adapter.
    """

    def __init__(self, dims: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(dims, bottleneck)
        self.act = nn.ReLU()
        self.up = nn.Linear(bottleneck, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def _adapter_hook(adapter: SerialAdapter, module, args, output):
    if isinstance(output, tuple):
        return (adapter(output[0]),) + tuple(output[1:])
    return adapter(output)


def attach_serial_adapter(module: nn.Module, adapter: SerialAdapter):
    """Make ``module``'s output pass through ``adapter`` (a forward hook replacing the output).

    Returns the hook handle. A tuple output (``nn.MultiheadAttention``) is adapted in its first
    element.
    """
    return module.register_forward_hook(functools.partial(_adapter_hook, adapter))
