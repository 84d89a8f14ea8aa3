"""How training cost is measured, the same way in the hook, in bench and in tests.

Definitions (docs/cost_accounting.md):

* trainable parameters: count, % of the whole model, and the tuning share in each paper's
  convention (E3VA Swin-B: 1.20 M = 1.38 % of the backbone; M2IST: side adapters = 2.11 % of all
  parameters);
* training memory: the peak of live tensor bytes during one training step and its split
  (:mod:`mmsidetune.cost.memory`, docs/cost_accounting.md);
* bytes autograd holds for backward (:class:`SavedTensorMeter`), an extra deterministic column.
"""
import time
import weakref
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Optional, Set

import torch
import torch.nn as nn

from ..tuners.freezing import count_trainable
from ..utils.dist import unwrap_model

__all__ = [
    'ParamCount', 'count_parameters', 'SavedTensorMeter', 'parameter_bytes', 'gradient_bytes',
    'optimizer_state_bytes', 'unwrap_model', 'StepTimer', 'MB', 'cpu_training_bytes'
]

MB = 1024.0**2


#: tuning-share convention of the Swin papers (E3VA and its baselines, V-PETL Bench tables).
BACKBONE_CONVENTION = 'trainable backbone parameters / backbone parameters'


@dataclass
class ParamCount:
    """Parameter counts of a model (numbers of scalars, percentages in %).

    ``tuning`` / ``tuning_total`` is the tuning share in the model's paper's convention
    (``tuning_convention`` says which): for the Swin methods the trainable backbone parameters
    over the backbone parameters (E3VA Swin-B: 1.20 M = 1.38 %); a model with a
    ``tuning_share()`` method gives its own (M2IST: side adapters over all parameters, 2.11 %).
    """
    total: int
    trainable: int
    backbone_total: int
    backbone_trainable: int
    tuning: int = 0
    tuning_total: int = 0
    tuning_convention: str = BACKBONE_CONVENTION

    @property
    def trainable_pct(self) -> float:
        """Trainable share of the whole model, in %."""
        return 100.0 * self.trainable / max(self.total, 1)

    @property
    def backbone_trainable_pct(self) -> float:
        """Trainable backbone parameters as a share of the backbone, in %."""
        return 100.0 * self.backbone_trainable / max(self.backbone_total, 1)

    @property
    def tuning_pct(self) -> float:
        """Tuning share in the paper's convention (``tuning_convention``), in %."""
        return 100.0 * self.tuning / max(self.tuning_total, 1)

    def to_dict(self) -> Dict[str, float]:
        return dict(asdict(self), trainable_pct=self.trainable_pct,
                    backbone_trainable_pct=self.backbone_trainable_pct,
                    tuning_pct=self.tuning_pct)


def _numel(params) -> int:
    """Scalars in ``params``, each parameter once (a tensor hashes by identity)."""
    return sum(p.numel() for p in set(params))


def count_parameters(model: nn.Module, backbone: Optional[nn.Module] = None) -> ParamCount:
    """Count total and trainable (``requires_grad``) parameters, shared parameters once.

    The tuning share (:class:`ParamCount`) is asked from the model: a model with a
    ``tuning_share()`` method returns ``dict(tuned=<parameters>, total=<parameters>,
    convention=<str>)``; otherwise it is the trainable backbone parameters over the backbone's.

    Args:
        model: the model (wrappers are unwrapped).
        backbone: the backbone-side module; defaults to ``model.backbone`` when present,
            otherwise the backbone counts are zero.

    Raises:
        ValueError: a ``tuning_share()`` result without the keys ``tuned``, ``total`` and
            ``convention``.
    """
    model = unwrap_model(model)
    if backbone is None:
        backbone = getattr(model, 'backbone', None)

    def _count(module):
        return count_trainable(module)[::-1] if module is not None else (0, 0)

    total, trainable = _count(model)
    b_total, b_trainable = _count(backbone)
    share = getattr(model, 'tuning_share', None)
    if callable(share):
        share = share()
        if not isinstance(share, dict) or {'tuned', 'total', 'convention'} - set(share):
            raise ValueError(f'{type(model).__name__}.tuning_share() must return a dict with '
                             f"'tuned', 'total' and 'convention', got {share!r}")
        return ParamCount(total, trainable, b_total, b_trainable, _numel(share['tuned']),
                          _numel(share['total']), str(share['convention']))
    return ParamCount(total, trainable, b_total, b_trainable, b_trainable, b_total)


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
    """The earlier CPU estimate of training memory, in bytes (kept for comparison only).

    ``saved_bytes`` (from :class:`SavedTensorMeter`) + parameter + gradient + optimizer-state bytes.
    """
    return (saved_bytes + parameter_bytes(model) + gradient_bytes(model) +
            optimizer_state_bytes(optimizer))


class SavedTensorMeter:
    """Count the bytes autograd holds for backward when backward begins.

    Every tensor autograd packs while the context is open is remembered through a weak reference.
    When backward first unpacks a saved tensor (or, without backward, when the context closes),
    the meter adds up the storages of the packed tensors that are still alive, each storage once
    (a storage shared by views or saved by two ops counts once; a small saved slice counts its
    whole storage, which it keeps alive). Tensors saved by graphs that were freed during forward
    are gone by then and do not count; storages of the tensors in ``exclude`` (normally the
    model's parameters, counted separately) do not count either.

    This is the extra, deterministic ``saved_for_backward_mb`` column of bench; training memory
    itself is the peak of live tensor bytes (:class:`mmsidetune.cost.StepMemoryMeter`).

    Example::

        with SavedTensorMeter(exclude=model.parameters()) as meter:
            loss = model(x).sum()
            loss.backward()
        meter.bytes  # bytes held for backward when backward began

    Attributes:
        bytes (int): Bytes of distinct live saved storages (set at the first unpack or on exit).
        num_tensors (int): Number of pack calls seen.
    """

    def __init__(self, exclude=()):
        self._exclude: Set[tuple] = {self._key(t) for t in exclude}
        self._packed: List[weakref.ref] = []
        self._counted = False
        self.bytes = 0
        self.num_tensors = 0
        self._ctx = None

    @staticmethod
    def _key(t: torch.Tensor) -> tuple:
        storage = t.untyped_storage()
        return (t.device.type, t.device.index, storage.data_ptr())

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.num_tensors += 1
        # A detached alias (same storage, no grad_fn): returning ``t`` itself would make a saved
        # output and its grad_fn a reference cycle, alive until the garbage collector runs, and
        # the meter would change the memory it is next to.
        alias = t.detach()
        if t.layout == torch.strided and not self._counted:
            self._packed.append(weakref.ref(alias))
        return alias

    def _unpack(self, t: torch.Tensor) -> torch.Tensor:
        if not self._counted:
            self._count()
        return t

    def _count(self) -> None:
        """Add up the live saved storages once (all alive now: their addresses are distinct)."""
        seen: Dict[tuple, int] = {}
        for ref in self._packed:
            t = ref()
            if t is None:
                continue
            key = self._key(t)
            if key not in self._exclude:
                seen[key] = t.untyped_storage().nbytes()
        self.bytes = sum(seen.values())
        self._packed = []
        self._counted = True

    def __enter__(self) -> 'SavedTensorMeter':
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
        self._ctx = None
        if not self._counted:
            self._count()


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
