"""Attach an adapter to a frozen module with a forward hook (no copy of the module's code).

The hooked module's parameters and state-dict keys stay as they are, so pretrained trunk weights
load unchanged. The hooks are small objects holding the adapter, so ``copy.deepcopy`` of a model
(EMA) gives hooks that call the *copied* adapters.
"""
import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

__all__ = ['add_serial_adapter', 'add_parallel_adapter']


class _SerialHook:
    """``y -> y + adapter(y)``: the adapter reads the module's output (Houlsby, LoRand)."""

    def __init__(self, adapter: nn.Module):
        self.adapter = adapter

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output + self.adapter(output)


class _ParallelHook:
    """``y -> y + adapter(x)``: the adapter reads the module's input (LoRA, AdaptFormer)."""

    def __init__(self, adapter: nn.Module):
        self.adapter = adapter

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output + self.adapter(args[0])


def add_serial_adapter(module: nn.Module, adapter: nn.Module) -> RemovableHandle:
    """Make ``module(x)`` return ``y + adapter(y)`` with ``y`` its original output.

    Shapes: ``y`` and ``adapter(y)`` must have the same shape (``(B, N, C)`` in Swin)."""
    return module.register_forward_hook(_SerialHook(adapter))


def add_parallel_adapter(module: nn.Module, adapter: nn.Module) -> RemovableHandle:
    """Make ``module(x, ...)`` return ``y + adapter(x)`` with ``y`` its original output.

    Shapes: ``adapter`` maps the first positional input to the output's shape."""
    return module.register_forward_hook(_ParallelHook(adapter))
