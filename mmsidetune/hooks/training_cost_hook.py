"""Hook that reports what training costs: trainable parameters, peak memory and step time."""
import json
import os.path as osp
import statistics
import time
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..cost import MB, StepMemoryMeter, count_parameters, model_device, unwrap_model
from ..utils.atomic_io import atomic_write_bytes

__all__ = ['TrainingCostHook']


@HOOKS.register_module()
class TrainingCostHook(Hook):
    """Record trainable parameters, per-iteration peak memory and step time.

    Add to a config with ``custom_hooks = [dict(type='TrainingCostHook')]``. It writes to the
    message hub (hence to log lines and ``scalars.json``; docs/cost_accounting.md):

    * ``train/peak_mem_mb`` -- training memory of the iteration in MB (2**20 bytes): the peak of
      live tensor bytes during the step (forward, backward, optimizer step), measured by
      :class:`mmsidetune.cost.StepMemoryMeter` on the model's own device, the same definition
      as ``tools/bench.py``'s ``memory_mb``. With it the split at the peak:
      ``train/mem_parameters_mb``, ``train/mem_gradients_mb``, ``train/mem_optimizer_mb``,
      ``train/mem_activations_mb``, ``train/mem_temporaries_mb``.
      On CUDA it is measured every iteration (``max_memory_allocated`` after resetting the peak,
      so mmengine's own ``memory`` field then shows the same iteration's peak). On CPU the
      profiler slows a step several times, so only iterations ``memory_start``,
      ``memory_start + memory_interval``, ... (0-based, counted over the whole run) are
      measured; log lines in between show the last measured values.
    * ``train/step_ms`` -- wall time from ``before_train_iter`` to ``after_train_iter`` in ms
      (forward, backward and optimizer step; data loading excluded), of the iterations not
      profiled on CPU (a profiled step is not a step time).
    * ``train/trainable_params``, ``train/trainable_pct``, ``train/backbone_trainable_pct``,
      ``train/tuning_pct`` (the tuning share in the model's paper's convention,
      :class:`mmsidetune.cost.ParamCount`).

    At the end of training it logs a summary (maximum peak memory, median step time after
    ``warmup_iters``) and writes it to ``<work_dir>/cost_summary.json`` on the main process.
    The file covers the whole run across resumes: ``segments`` holds one record per run segment
    (``first_iter``, ``last_iter``, ``iters``, ``peak_mem_mb``, ``median_step_ms``, ...), and the
    top-level fields sum (``iters``), take the maximum (``peak_mem_mb``) or the
    iteration-weighted median of the segments' medians (``median_step_ms``; exact for one
    segment). A figure that was not measured (memory of a run segment none of whose iterations
    was profiled, e.g. one iteration on CPU; step time of a segment of profiled steps only) is
    ``null`` in the file and "not measured" in the log, never 0. A resumed run reads the
    segments written before its start iteration; a segment that ran no iteration (resuming a
    finished run) leaves the file as it was.

    Args:
        memory (str): ``'auto'`` (the model's device), ``'cuda'`` or ``'cpu'``. Defaults to
            ``'auto'``.
        warmup_iters (int): Iterations left out of the median step time. Defaults to 5.
        memory_start (int): First iteration whose memory is measured on CPU; 1 (the second), so
            that the optimizer state exists, as in every later step. Defaults to 1.
        memory_interval (int): Measure memory on CPU every this many iterations after
            ``memory_start``. Defaults to 100.

    Raises:
        ValueError: for an unknown ``memory`` mode, ``'cuda'`` without CUDA, a negative
            ``memory_start`` or a ``memory_interval`` below 1; on resume, for a
            ``cost_summary.json`` that cannot be read (named; move it away to start anew).
    """

    # Above the LoggerHook (BELOW_NORMAL) so this iteration's values are in its log line, and
    # before mmengine resets CUDA's peak counter there.
    priority = 'ABOVE_NORMAL'
    MODES = ('auto', 'cuda', 'cpu')

    def __init__(self,
                 memory: str = 'auto',
                 warmup_iters: int = 5,
                 memory_start: int = 1,
                 memory_interval: int = 100):
        if memory not in self.MODES:
            raise ValueError(f'TrainingCostHook: memory must be one of {self.MODES}, got {memory!r}')
        if memory == 'cuda' and not torch.cuda.is_available():
            raise ValueError("TrainingCostHook: memory='cuda' but CUDA is not available")
        if memory_start < 0 or memory_interval < 1:
            raise ValueError('TrainingCostHook: memory_start must be >= 0 and memory_interval >= '
                             f'1, got {memory_start} and {memory_interval}')
        self.memory = memory
        self.warmup_iters = warmup_iters
        self.memory_start = memory_start
        self.memory_interval = memory_interval
        self._mode: Optional[str] = None
        self._meter: Optional[StepMemoryMeter] = None
        self._start = 0.0
        self.peak_bytes = 0
        self.measured = 0  # iterations whose memory was measured
        self.step_ms = []
        self.iters = 0
        self.params = None

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        self.params = count_parameters(model)
        device = model_device(model)
        if self.memory == 'cuda' and device.type != 'cuda':
            raise ValueError("TrainingCostHook: memory='cuda' but the model is on "
                             f'{device}')
        if self.memory == 'cpu' and device.type != 'cpu':
            raise ValueError(f"TrainingCostHook: memory='cpu' but the model is on {device}")
        self._mode = 'cuda_allocator' if device.type == 'cuda' else 'cpu_profiler'
        hub = runner.message_hub
        hub.update_scalar('train/trainable_params', self.params.trainable)
        hub.update_scalar('train/trainable_pct', self.params.trainable_pct)
        hub.update_scalar('train/backbone_trainable_pct', self.params.backbone_trainable_pct)
        hub.update_scalar('train/tuning_pct', self.params.tuning_pct)
        p = self.params
        runner.logger.info(
            f'TrainingCostHook: trainable {p.trainable / 1e6:.3f} M of {p.total / 1e6:.2f} M '
            f'parameters ({p.trainable_pct:.2f} %); tuning {p.tuning / 1e6:.3f} M = '
            f'{p.tuning_pct:.2f} % ({p.tuning_convention}); memory measured by {self._mode}')
        self._previous = self._read_previous(runner)

    def _measures_memory(self, it: int) -> bool:
        if self._mode == 'cuda_allocator':
            return True
        return it >= self.memory_start and (it - self.memory_start) % self.memory_interval == 0

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._meter = None
        if self._measures_memory(runner.iter):
            self._meter = StepMemoryMeter(runner.model, runner.optim_wrapper)
            self._meter.start()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._mode == 'cuda_allocator':
            torch.cuda.synchronize(model_device(runner.model))
        step_ms = (time.perf_counter() - self._start) * 1000.0
        hub = runner.message_hub
        self.iters += 1
        if self._meter is not None:
            result = self._meter.stop()
            self._meter = None
            self.peak_bytes = max(self.peak_bytes, result.peak_bytes)
            self.measured += 1
            hub.update_scalar('train/peak_mem_mb', result.peak_mb)
            for key, mb in result.breakdown_mb().items():
                hub.update_scalar(f'train/mem_{key}_mb', mb)
            if self._mode == 'cpu_profiler':
                return  # a profiled CPU step is no step time
        self.step_ms.append(step_ms)
        hub.update_scalar('train/step_ms', step_ms)

    def _summary_path(self, runner) -> str:
        return osp.join(runner.work_dir, 'cost_summary.json')

    def _read_previous(self, runner) -> list:
        """The segments of earlier runs of this training (resume), those before its start."""
        self._first_iter = runner.iter
        path = self._summary_path(runner)
        if runner.iter == 0 or not osp.isfile(path):
            if runner.iter:
                runner.logger.warning(f'TrainingCostHook: resumed at iteration {runner.iter} '
                                      f'but {path} does not exist: the summary covers '
                                      'this segment only')
            return []
        try:
            with open(path) as f:
                data = json.load(f)
            segments = data['segments'] if 'segments' in data else [
                dict(data, first_iter=0, last_iter=data['iters'])]
            kept = [seg for seg in segments if int(seg['first_iter']) < runner.iter]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f'TrainingCostHook: cannot read {path} to extend it on resume '
                             f'({type(e).__name__}: {e}); move it away to start a new '
                             'summary') from e
        return kept

    def summary(self) -> dict:
        """This run segment's cost: parameter counts, max peak memory (MB), median step time
        (ms), iterations and the iteration range (``first_iter``, ``last_iter``)."""
        timed = self.step_ms[self.warmup_iters:] or self.step_ms
        first = getattr(self, '_first_iter', 0)
        return dict(
            params=self.params.to_dict() if self.params else None,
            memory_mode=self._mode,
            peak_mem_mb=self.peak_bytes / MB if self.measured else None,
            median_step_ms=statistics.median(timed) if timed else None,
            iters=self.iters,
            first_iter=first,
            last_iter=first + self.iters)

    def run_summary(self) -> dict:
        """The whole run (earlier segments read on resume + this one), as written to
        ``cost_summary.json``."""
        segments = list(getattr(self, '_previous', [])) + [self.summary()]
        segments = [seg for seg in segments if seg['iters']]
        medians = sorted((seg['median_step_ms'], seg['iters']) for seg in segments
                         if seg['median_step_ms'] is not None)
        weighted, half, seen = None, sum(n for _, n in medians) / 2, 0
        for value, n in medians:
            seen += n
            if seen >= half:
                weighted = value
                break
        last = segments[-1] if segments else self.summary()
        return dict(
            params=last['params'],
            memory_mode=last['memory_mode'],
            peak_mem_mb=max((seg['peak_mem_mb'] for seg in segments
                             if seg['peak_mem_mb'] is not None), default=None),
            median_step_ms=weighted,
            iters=sum(seg['iters'] for seg in segments),
            segments=segments)

    def after_train(self, runner) -> None:
        summary = self.summary()
        runner.message_hub.update_info('cost_summary', summary)
        step, p, peak = summary['median_step_ms'], self.params, summary['peak_mem_mb']
        if not summary["iters"]:
            runner.logger.info('TrainingCostHook summary: no training iteration ran; '
                               'cost_summary.json left as it was')
            return
        runner.logger.info(
            f'TrainingCostHook summary: {summary["iters"]} iterations, peak memory '
            f'{"not measured" if peak is None else f"{peak:.1f} MB"} ({self._mode}), median '
            f'step {"not measured" if step is None else f"{step:.1f} ms"}, '
            f'trainable {p.trainable_pct:.2f} % of the model, tuning {p.tuning_pct:.2f} % '
            f'({p.tuning_convention})')
        if is_main_process():  # written whole, then renamed: never a half-written file
            atomic_write_bytes(json.dumps(self.run_summary(), indent=2).encode(),
                               self._summary_path(runner))
