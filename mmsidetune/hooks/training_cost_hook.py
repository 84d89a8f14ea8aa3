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

from ..cost import MB, SavedTensorMeter, count_parameters, cpu_training_bytes, unwrap_model
from ..utils.atomic_io import atomic_write_bytes

__all__ = ['TrainingCostHook']


@HOOKS.register_module()
class TrainingCostHook(Hook):
    """Record trainable parameters, per-iteration peak memory and step time (SPEC.md section 3).

    Add to a config with ``custom_hooks = [dict(type='TrainingCostHook')]``. Per iteration it
    writes to the message hub (hence to log lines and ``scalars.json``):

    * ``train/peak_mem_mb`` -- peak memory of the iteration in MB (2**20 bytes). On CUDA:
      ``torch.cuda.max_memory_allocated()`` after resetting the peak before the iteration (so
      mmengine's own ``memory`` field then shows the last iteration's peak too). On CPU: bytes
      saved for backward + parameter + gradient + optimizer-state bytes.
    * ``train/step_ms`` -- wall time from ``before_train_iter`` to ``after_train_iter`` in ms
      (forward, backward and optimizer step; data loading excluded).
    * ``train/trainable_params``, ``train/trainable_pct``, ``train/backbone_trainable_pct``.

    At the end of training it logs a summary (maximum peak memory, median step time after
    ``warmup_iters``) and writes it to ``<work_dir>/cost_summary.json`` on the main process.
    The file covers the whole run across resumes: ``segments`` holds one record per run segment
    (``first_iter``, ``last_iter``, ``iters``, ``peak_mem_mb``, ``median_step_ms``, ...), and the
    top-level fields sum (``iters``), take the maximum (``peak_mem_mb``) or the
    iteration-weighted median of the segments' medians (``median_step_ms``; exact for one
    segment). A resumed run reads the segments written before its start iteration; a segment
    that ran no iteration (resuming a finished run) leaves the file as it was.

    Args:
        memory (str): ``'auto'`` (CUDA when the model is on a GPU, else saved-tensor counting),
            ``'cuda'`` or ``'saved_tensors'``. Defaults to ``'auto'``.
        warmup_iters (int): Iterations left out of the median step time. Defaults to 5.

    Raises:
        ValueError: for an unknown ``memory`` mode, or ``'cuda'`` without CUDA; on resume, for
            a ``cost_summary.json`` that cannot be read (named; move it away to start anew).
    """

    # Above the LoggerHook (BELOW_NORMAL) so this iteration's values are in its log line, and
    # before mmengine resets CUDA's peak counter there.
    priority = 'ABOVE_NORMAL'
    MODES = ('auto', 'cuda', 'saved_tensors')

    def __init__(self, memory: str = 'auto', warmup_iters: int = 5):
        if memory not in self.MODES:
            raise ValueError(f'TrainingCostHook: memory must be one of {self.MODES}, got {memory!r}')
        if memory == 'cuda' and not torch.cuda.is_available():
            raise ValueError("TrainingCostHook: memory='cuda' but CUDA is not available")
        self.memory = memory
        self.warmup_iters = warmup_iters
        self._mode: Optional[str] = None
        self._meter: Optional[SavedTensorMeter] = None
        self._start = 0.0
        self.peak_bytes = 0
        self.step_ms = []
        self.params = None

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        self.params = count_parameters(model)
        on_cuda = any(p.is_cuda for p in model.parameters())
        self._mode = self.memory if self.memory != 'auto' else (
            'cuda' if on_cuda else 'saved_tensors')
        hub = runner.message_hub
        hub.update_scalar('train/trainable_params', self.params.trainable)
        hub.update_scalar('train/trainable_pct', self.params.trainable_pct)
        hub.update_scalar('train/backbone_trainable_pct', self.params.backbone_trainable_pct)
        p = self.params
        runner.logger.info(
            f'TrainingCostHook: trainable {p.trainable / 1e6:.3f} M of {p.total / 1e6:.2f} M '
            f'parameters ({p.trainable_pct:.2f} %); backbone {p.backbone_trainable / 1e6:.3f} M '
            f'of {p.backbone_total / 1e6:.2f} M ({p.backbone_trainable_pct:.2f} %); '
            f'memory measured as {self._mode}')
        self._previous = self._read_previous(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._mode == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._meter = SavedTensorMeter(exclude=unwrap_model(runner.model).parameters())
            self._meter.__enter__()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._mode == 'cuda':
            torch.cuda.synchronize()
            step_ms = (time.perf_counter() - self._start) * 1000.0
            peak = torch.cuda.max_memory_allocated()
        else:
            step_ms = (time.perf_counter() - self._start) * 1000.0
            self._meter.__exit__(None, None, None)
            peak = cpu_training_bytes(unwrap_model(runner.model), runner.optim_wrapper,
                                      self._meter.bytes)
            self._meter = None
        self.peak_bytes = max(self.peak_bytes, peak)
        self.step_ms.append(step_ms)
        hub = runner.message_hub
        hub.update_scalar('train/peak_mem_mb', peak / MB)
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
            peak_mem_mb=self.peak_bytes / MB,
            median_step_ms=statistics.median(timed) if timed else None,
            iters=len(self.step_ms),
            first_iter=first,
            last_iter=first + len(self.step_ms))

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
            peak_mem_mb=max((seg['peak_mem_mb'] for seg in segments), default=0.0),
            median_step_ms=weighted,
            iters=sum(seg['iters'] for seg in segments),
            segments=segments)

    def after_train(self, runner) -> None:
        summary = self.summary()
        runner.message_hub.update_info('cost_summary', summary)
        step, p = summary['median_step_ms'], self.params
        if step is None:
            runner.logger.info('TrainingCostHook summary: no training iteration ran; '
                               'cost_summary.json left as it was')
            return
        runner.logger.info(
            f'TrainingCostHook summary: {summary["iters"]} iterations, peak memory '
            f'{summary["peak_mem_mb"]:.1f} MB ({self._mode}), median step {step:.1f} ms, '
            f'trainable {p.trainable_pct:.2f} % of the model, '
            f'{p.backbone_trainable_pct:.2f} % of the backbone')
        if is_main_process():  # written whole, then renamed: never a half-written file
            atomic_write_bytes(json.dumps(self.run_summary(), indent=2).encode(),
                               self._summary_path(runner))
