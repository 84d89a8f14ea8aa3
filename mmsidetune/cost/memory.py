"""Training memory of one step: the peak of live tensor bytes, and its split at the peak.

One definition for the hook, bench, tests and docs (docs/cost_accounting.md): the **peak of
live tensor bytes during one training step** (forward, backward, optimizer step), split at the
peak into :data:`CATEGORIES` = parameters, gradients, optimizer state, activations, temporaries.

* CUDA: ``torch.cuda.reset_peak_memory_stats(device)`` before the step and
  ``torch.cuda.max_memory_allocated(device)`` after it, on the model's own device (what mmdet logs
  as ``memory`` and what the papers report). Other tensors on the device that do not belong to the
  model (e.g. other models in the same bench process) are subtracted: the meter reads what was
  allocated before the step and keeps only the model's own part of it (parameters, gradients,
  optimizer state). Split: parameters, gradients and optimizer state are counted from the
  model and optimizer; the rest of the peak is reported under ``activations`` (activations and
  temporaries together; the allocator does not tell them apart), ``temporaries`` is 0.
* CPU: PyTorch's profiler memory timeline (``torch.profiler.profile(profile_memory=True,
  record_shapes=True, with_stack=True)`` and ``torch.profiler._memory_profiler``, a private API
  whose behaviour the tests pin). Every allocation and free of the step is replayed in order;
  the peak is the largest sum of live bytes, split by the profiler's category of each tensor
  (:data:`PROFILER_CATEGORY_MAP`; a tensor the profiler calls a parameter but that the step
  itself allocated, such as anchors or targets, counts as an activation). Parameters the step
  never touches are live as well: they are added to ``parameters`` (and the peak) so that the
  count covers the whole model.

The profiler slows the step several times: measure memory and time on different steps. The lines
its C++ side prints for every profiled step are kept out of the console
(:mod:`mmsidetune.cost.quiet`).
"""
import dataclasses
from typing import Dict, Optional

import torch
import torch.nn as nn

from .accounting import MB, optimizer_state_bytes, parameter_bytes, unwrap_model
from .quiet import CppWarningsOff, dropped_profiler_lines

__all__ = ['CATEGORIES', 'PROFILER_CATEGORY_MAP', 'StepMemory', 'StepMemoryMeter', 'model_device']

#: the five parts of the peak, in the order tables and charts show them.
CATEGORIES = ('parameters', 'gradients', 'optimizer', 'activations', 'temporaries')

#: torch.profiler memory category (``torch.profiler._memory_profiler.Category`` name, ``None`` for
#: tensors the profiler could not categorise) -> our category.
PROFILER_CATEGORY_MAP = {
    'PARAMETER': 'parameters',
    'GRADIENT': 'gradients',
    'OPTIMIZER_STATE': 'optimizer',
    'INPUT': 'activations',  # the batch and other tensors the step reads but did not create
    'ACTIVATION': 'activations',  # forward outputs kept until backward uses them
    'TEMPORARY': 'temporaries',  # freed within the op (or op group) that made it
    'AUTOGRAD_DETAIL': 'temporaries',  # activation gradients and other backward intermediates
    None: 'temporaries',  # uncategorised, e.g. the optimizer's foreach intermediates
}


@dataclasses.dataclass
class StepMemory:
    """Peak of live tensor bytes during one step and its split at the peak.

    Attributes:
        peak_bytes (int): the peak, in bytes (the sum of ``breakdown``).
        breakdown (dict): bytes per category of :data:`CATEGORIES` at the peak.
        device (str): the device measured, e.g. ``'cpu'`` or ``'cuda:1'``.
        source (str): ``'cpu_profiler'`` or ``'cuda_allocator'``.
    """
    peak_bytes: int
    breakdown: Dict[str, int]
    device: str
    source: str

    @property
    def peak_mb(self) -> float:
        """The peak in MB (2**20 bytes)."""
        return self.peak_bytes / MB

    def breakdown_mb(self) -> Dict[str, float]:
        """The split at the peak in MB (2**20 bytes), keys in :data:`CATEGORIES` order."""
        return {k: self.breakdown.get(k, 0) / MB for k in CATEGORIES}


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model without tensors."""
    model = unwrap_model(model)
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device('cpu')


def _grad_bytes(model: nn.Module) -> int:
    return sum(p.grad.numel() * p.grad.element_size()
               for p in unwrap_model(model).parameters() if p.grad is not None)


class StepMemoryMeter:
    """Measure one training step's peak live tensor bytes and its split (module docstring).

    Example::

        with StepMemoryMeter(model, optim_wrapper) as meter:
            model.train_step(batch, optim_wrapper)
        meter.result.peak_mb, meter.result.breakdown_mb()

    or ``meter.start()`` ... ``result = meter.stop()`` (as :class:`TrainingCostHook` does).

    Args:
        model: the model being trained (wrappers are unwrapped); its device is measured. ``None``
            measures ``device`` and skips the CUDA split and the CPU untouched-parameter count.
        optimizer: the optimizer or mmengine ``OptimWrapper`` (CUDA split), or ``None``.
        device: the device to measure when ``model`` is ``None`` (default CPU).

    Raises:
        ValueError: a device that is neither CPU nor CUDA, or CUDA without ``torch.cuda``.
        RuntimeError: ``stop()`` without ``start()``, or ``start()`` twice.
    """

    def __init__(self, model: Optional[nn.Module] = None, optimizer=None, device=None):
        self.model = unwrap_model(model) if model is not None else None
        self.optimizer = optimizer
        if device is None:
            device = model_device(model) if model is not None else torch.device('cpu')
        self.device = torch.device(device)
        if self.device.type == 'cuda':
            if not torch.cuda.is_available():
                raise ValueError('StepMemoryMeter: CUDA device requested but CUDA is unavailable')
            if self.device.index is None:
                self.device = torch.device('cuda', torch.cuda.current_device())
        elif self.device.type != 'cpu':
            raise ValueError(f'StepMemoryMeter measures CPU or CUDA devices, got {self.device}')
        self.result: Optional[StepMemory] = None
        self._prof = None
        self._quiet = CppWarningsOff()
        self._others = 0
        self._running = False

    # -- CUDA ---------------------------------------------------------------------------------
    def _own_bytes(self) -> int:
        if self.model is None:
            return 0
        return (parameter_bytes(self.model) + _grad_bytes(self.model) +
                optimizer_state_bytes(self.optimizer))

    def _start_cuda(self) -> None:
        torch.cuda.synchronize(self.device)
        # what other models/tensors hold on the device is not this step's memory
        self._others = max(torch.cuda.memory_allocated(self.device) - self._own_bytes(), 0)
        torch.cuda.reset_peak_memory_stats(self.device)

    def _stop_cuda(self) -> StepMemory:
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - self._others
        split = dict.fromkeys(CATEGORIES, 0)
        if self.model is not None:
            split['parameters'] = parameter_bytes(self.model)
            split['gradients'] = sum(p.numel() * p.element_size()
                                     for p in self.model.parameters() if p.requires_grad)
            split['optimizer'] = optimizer_state_bytes(self.optimizer)
            known = split['parameters'] + split['gradients'] + split['optimizer']
            if known > peak:  # the peak came before every gradient existed: no remainder
                split['gradients'] = max(peak - split['parameters'] - split['optimizer'], 0)
        split['activations'] = max(peak - sum(split.values()), 0)
        return StepMemory(int(peak), split, str(self.device), 'cuda_allocator')

    # -- CPU ----------------------------------------------------------------------------------
    def _start_cpu(self) -> None:
        from torch.profiler import ProfilerActivity, profile
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                             record_shapes=True, with_stack=True)
        self._quiet.start()
        try:
            with dropped_profiler_lines():
                self._prof.__enter__()
        except BaseException:
            self._quiet.stop()
            raise

    def _stop_cpu(self) -> StepMemory:
        prof, self._prof = self._prof, None
        try:
            with dropped_profiler_lines():
                prof.__exit__(None, None, None)
        finally:
            self._quiet.stop()
        peak, split = timeline_peak(prof._memory_profile(), self.device)
        if self.model is not None:
            # parameters the step never touched are not in the profile but are live all the same
            missing = parameter_bytes(self.model) - split['parameters']
            if missing > 0:
                split['parameters'] += missing
                peak += missing
        return StepMemory(int(peak), split, str(self.device), 'cpu_profiler')

    # -- public -------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin measuring (call just before the step)."""
        if self._running:
            raise RuntimeError('StepMemoryMeter.start() called twice without stop()')
        self._running = True
        self.result = None
        if self.device.type == 'cuda':
            self._start_cuda()
        else:
            self._start_cpu()

    def stop(self) -> StepMemory:
        """End measuring (call just after the step); returns and stores :attr:`result`."""
        if not self._running:
            raise RuntimeError('StepMemoryMeter.stop() called without start()')
        self._running = False
        self.result = self._stop_cuda() if self.device.type == 'cuda' else self._stop_cpu()
        return self.result

    def __enter__(self) -> 'StepMemoryMeter':
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # close the profiler, report nothing
            self._running = False
            if self._prof is not None:
                try:
                    with dropped_profiler_lines():
                        self._prof.__exit__(exc_type, exc, tb)
                finally:
                    self._prof = None
                    self._quiet.stop()
            return
        self.stop()


def timeline_peak(memory_profile, device) -> tuple:
    """Replay a profiler memory profile event by event: the peak of live bytes on ``device``
    and its split by :data:`CATEGORIES` at that moment.

    Args:
        memory_profile: ``torch.profiler.profile(...)._memory_profile()`` (a
            ``torch.profiler._memory_profiler.MemoryProfile``).
        device: the device whose tensors are counted.

    Returns:
        ``(peak_bytes, {category: bytes})``. Tensors alive before the profile began and seen
        during it (parameters, optimizer state, the batch) count from the start.
    """
    from torch.profiler._memory_profiler import Action, TensorKey
    device = torch.device(device)
    categories = memory_profile._categories
    live = dict.fromkeys(CATEGORIES, 0)
    total = peak = 0
    at_peak = dict(live)

    created = set()  # tensors allocated during the step

    def _ours(key, version) -> str:
        category = categories.get(key, version) if isinstance(key, TensorKey) else None
        name = None if category is None else category.name
        if name == 'PARAMETER' and key in created:
            # the profiler's data-flow rule also calls constants made in forward (anchors,
            # targets) parameters; a parameter cannot be made by the step: they are activations
            return 'activations'
        return PROFILER_CATEGORY_MAP[name]

    for _, action, (key, version), numbytes in memory_profile.timeline:
        if key.device != device:
            continue
        if action == Action.CREATE:
            created.add(key)
        if action in (Action.PREEXISTING, Action.CREATE):
            live[_ours(key, version)] += numbytes
            total += numbytes
        elif action == Action.INCREMENT_VERSION:  # same bytes, maybe another category
            live[_ours(key, version)] -= numbytes
            live[_ours(key, version + 1)] += numbytes
        elif action == Action.DESTROY:
            live[_ours(key, version)] -= numbytes
            total -= numbytes
        else:
            raise ValueError(f'unknown profiler memory action {action!r}')
        if total > peak:
            peak, at_peak = total, dict(live)
    return peak, at_peak
