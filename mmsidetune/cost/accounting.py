"""How training cost is measured, the same way in the hook, in bench and in tests.

SPEC.md section 3:

* trainable parameters: count, % of the whole model, and of the backbone only (the papers'
  convention: E3VA Swin-B is 1.20 M = 1.38 % of the backbone);
* memory on GPU: ``torch.cuda.max_memory_allocated()`` over one training step;
* memory on CPU: bytes held for backward, counted with ``torch.autograd.graph.saved_tensors_hooks``
  (each storage once, parameters excluded), plus parameter, gradient and optimizer-state bytes.
  This count is deterministic for fixed inputs, so tests may assert on it.
"""
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, Optional, Set

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper

__all__ = [
    'ParamCount', 'count_parameters', 'SavedTensorMeter', 'parameter_bytes', 'gradient_bytes',
    'optimizer_state_bytes', 'unwrap_model', 'StepTimer', 'MB', 'cpu_training_bytes'
]

MB = 1024.0**2


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside an mmengine/torch DDP-style wrapper (``model.module``), else ``model``."""
    return model.module if is_model_wrapper(model) else model


@dataclass
class ParamCount:
    """Parameter counts of a model (numbers of scalars, percentages in %)."""
    total: int
    trainable: int
    backbone_total: int
    backbone_trainable: int

    @property
    def trainable_pct(self) -> float:
        """Trainable share of the whole model, in %."""
        return 100.0 * self.trainable / max(self.total, 1)

    @property
    def backbone_trainable_pct(self) -> float:
        """Trainable backbone parameters as a share of the backbone, in % (papers' convention)."""
        return 100.0 * self.backbone_trainable / max(self.backbone_total, 1)

    def to_dict(self) -> Dict[str, float]:
        return dict(asdict(self), trainable_pct=self.trainable_pct,
                    backbone_trainable_pct=self.backbone_trainable_pct)


def count_parameters(model: nn.Module, backbone: Optional[nn.Module] = None) -> ParamCount:
    """Count total and trainable (``requires_grad``) parameters, shared parameters once.

    Args:
        model: the model (wrappers are unwrapped).
        backbone: the backbone-side module; defaults to ``model.backbone`` when present,
            otherwise the backbone counts are zero.
    """
    model = unwrap_model(model)
    if backbone is None:
        backbone = getattr(model, 'backbone', None)

    def _count(module):
        if module is None:
            return 0, 0
        params = list(module.parameters())  # Module.parameters() already yields each once
        return (sum(p.numel() for p in params),
                sum(p.numel() for p in params if p.requires_grad))

    total, trainable = _count(model)
    b_total, b_trainable = _count(backbone)
    return ParamCount(total, trainable, b_total, b_trainable)


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of all parameters of ``model``."""
    return sum(p.numel() * p.element_size() for p in unwrap_model(model).parameters())


def gradient_bytes(model: nn.Module) -> int:
    """Bytes the gradients of the trainable parameters take (whether allocated now or not)."""
    return sum(p.numel() * p.element_size() for p in unwrap_model(model).parameters()
               if p.requires_grad)


def optimizer_state_bytes(optimizer: Optional[torch.optim.Optimizer]) -> int:
    """Bytes of tensors held in ``optimizer.state`` (e.g. AdamW's two moments per parameter).

    Accepts an mmengine ``OptimWrapper`` (its ``.optimizer`` is used) or ``None`` (0 bytes).
    """
    optimizer = getattr(optimizer, 'optimizer', optimizer)
    if optimizer is None:
        return 0
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def cpu_training_bytes(model: nn.Module, optimizer, saved_bytes: int) -> int:
    """Training memory of one step on CPU (SPEC.md section 3), in bytes.

    ``saved_bytes`` (from :class:`SavedTensorMeter`) + parameter + gradient + optimizer-state bytes.
    """
    return (saved_bytes + parameter_bytes(model) + gradient_bytes(model) +
            optimizer_state_bytes(optimizer))


class SavedTensorMeter:
    """Count the bytes autograd saves for backward while the context is open.

    Every tensor autograd packs is recorded by its storage, so a storage shared by several saved
    tensors (views, the same input saved by two ops) counts once. Storages of the tensors in
    ``exclude`` (normally the model's parameters, counted separately) are not counted.

    Example::

        with SavedTensorMeter(exclude=model.parameters()) as meter:
            loss = model(x).sum()
        meter.bytes  # bytes held for backward by this forward pass
        loss.backward()

    Attributes:
        bytes (int): Total bytes of distinct saved storages (after the context closes or live).
        num_tensors (int): Number of pack calls seen.
    """

    def __init__(self, exclude=()):
        self._exclude: Set[int] = {self._key(t) for t in exclude}
        self._seen: Set[tuple] = set()
        self.bytes = 0
        self.num_tensors = 0
        self._ctx = None

    @staticmethod
    def _key(t: torch.Tensor) -> tuple:
        storage = t.untyped_storage()
        return (t.device.type, t.device.index, storage.data_ptr())

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.num_tensors += 1
        if t.layout == torch.strided:
            key = self._key(t)
            if key not in self._seen and key not in self._exclude:
                self._seen.add(key)
                self.bytes += t.untyped_storage().nbytes()
        return t

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    def __enter__(self) -> 'SavedTensorMeter':
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
        self._ctx = None


class StepTimer:
    """Wall time of a region in milliseconds, synchronising CUDA when the device is CUDA."""

    def __init__(self, device: str = 'cpu'):
        self.cuda = str(device).startswith('cuda') and torch.cuda.is_available()
        self.ms = 0.0

    @contextmanager
    def measure(self) -> Iterator['StepTimer']:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield self
        if self.cuda:
            torch.cuda.synchronize()
        self.ms = (time.perf_counter() - start) * 1000.0
