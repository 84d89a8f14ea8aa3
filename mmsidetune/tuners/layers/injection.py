"""Attach an adapter to a frozen module with a forward hook (no copy of the module's code).

One convention for every method and model: the hook *adds* the adapter's output to the module's
output, ``y -> y + A(y)`` (serial: Houlsby, LoRand, M2IST's adapter baseline) or
``y -> y + A(x)`` (parallel: LoRA, AdaptFormer). A module returning a tuple
(``nn.MultiheadAttention``, ``BertAttention``) is adapted in its first element.

The hooked module's parameters and state-dict keys stay as they are, so pretrained trunk weights
load unchanged. The hooks are small objects holding the adapter, so ``copy.deepcopy`` of a model
(EMA) gives hooks that call the *copied* adapters.
"""
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

__all__ = ['add_serial_adapter', 'add_parallel_adapter']


def _add(output, delta_fn):
    if isinstance(output, tuple):
        return (output[0] + delta_fn(output[0]),) + tuple(output[1:])
    return output + delta_fn(output)


class _SerialHook:
    """``y -> y + adapter(y)``: the adapter reads the module's output."""

    def __init__(self, adapter: nn.Module):
        self.adapter = adapter

    def __call__(self, module: nn.Module, args: tuple, output):
        return _add(output, self.adapter)


class _ParallelHook:
    """``y -> y + adapter(x)``: the adapter reads the module's first positional input."""

    def __init__(self, adapter: nn.Module):
        self.adapter = adapter

    def __call__(self, module: nn.Module, args: tuple, output):
        return _add(output, lambda _: self.adapter(args[0]))


def add_serial_adapter(module: nn.Module, adapter: nn.Module) -> RemovableHandle:
    """Make ``module(x)`` return ``y + adapter(y)`` with ``y`` its original output.

    Shapes: ``y`` and ``adapter(y)`` must have the same shape (``(B, N, C)`` tokens,
    ``(B, C, H, W)`` maps)."""
    return module.register_forward_hook(_SerialHook(adapter))


def add_parallel_adapter(module: nn.Module, adapter: nn.Module) -> RemovableHandle:
    """Make ``module(x, ...)`` return ``y + adapter(x)`` with ``y`` its original output.

    Shapes: ``adapter`` maps the first positional input to the output's shape."""
    return module.register_forward_hook(_ParallelHook(adapter))
