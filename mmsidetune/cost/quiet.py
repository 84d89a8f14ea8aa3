"""Keep the lines PyTorch's profiler prints for every profiled CPU step out of the console.

A CPU memory measurement (:class:`~mmsidetune.cost.StepMemoryMeter`, used by ``tools/bench.py``
and :class:`~mmsidetune.hooks.TrainingCostHook`) runs ``torch.profiler.profile`` around one
training step. torch 2.13's C++ side then writes straight to file descriptor 2 (not through
Python's ``warnings`` or ``logging``, so no Python filter sees them):

* Kineto's ``USDT:<date> <pid>:<tid> SyncActivityProfilerHandler.cpp:NN] profiler_start`` and
  ``... profiler_stop`` while the profiler starts and stops. Kineto logs them above its
  ``ERROR`` level (only ``KINETO_LOG_LEVEL=6``, which also hides Kineto's errors, silences
  them): :func:`dropped_profiler_lines` points descriptor 2 at a temporary file while the
  profiler starts or stops (no user code runs then) and writes back every other line.
* c10's ``[W<date> CPUAllocator.cpp:NNN] Memory block of unknown size was allocated before the
  profiling started, profiler results will not include the deallocation event`` whenever the
  step frees a tensor made before the profiler started (the previous iteration's outputs, data
  samples rewritten by the data preprocessor): unavoidable in a training loop, and harmless here
  (the meter counts such tensors from the step's start, docs/cost_accounting.md). It is a
  ``LOG(WARNING)`` of c10's own logger, which reads the threshold ``FLAGS_caffe2_log_level``
  (the one ``TORCH_CPP_LOG_LEVEL`` sets at start-up) at every message:
  :class:`CppWarningsOff` raises it to ``ERROR`` for the profiled step only and restores it.

Documented in docs/cost_accounting.md ("Quiet logs").
"""
import contextlib
import ctypes
import glob
import os
import os.path as osp
import re
import sys
import tempfile

__all__ = ['DROPPED', 'dropped_profiler_lines', 'CppWarningsOff']

#: the exact lines :func:`dropped_profiler_lines` drops (anything else is written back).
DROPPED = re.compile(r'^USDT:\S+ \S+ \d+:\d+ SyncActivityProfilerHandler\.cpp:\d+\] '
                     r'profiler_(start|stop)\s*$')

_C10_ERROR = 2  # c10 log severities: INFO 0, WARNING 1, ERROR 2, FATAL 3


def _flush_python_stderr():
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # closed or replaced stderr: nothing buffered
        pass


@contextlib.contextmanager
def dropped_profiler_lines():
    """File descriptor 2 goes to a temporary file inside the block; afterwards every line but
    :data:`DROPPED` is written back to it, in order. Use it around calls that run no user code
    (the profiler's start and stop)."""
    _flush_python_stderr()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            _flush_python_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors='replace').splitlines(keepends=True)
            kept = ''.join(line for line in lines if not DROPPED.match(line))
            if kept:
                os.write(2, kept.encode())


def _c10_log_level():
    """c10's ``FLAGS_caffe2_log_level`` (a ``ctypes.c_int``), or ``None`` where this torch build
    does not export it (then the CPUAllocator line is printed as before)."""
    import torch
    for path in sorted(glob.glob(osp.join(osp.dirname(torch.__file__), 'lib', '*c10.*'))):
        try:
            return ctypes.c_int.in_dll(ctypes.CDLL(path), 'FLAGS_caffe2_log_level')
        except (OSError, ValueError):
            continue
    return None


class CppWarningsOff:
    """``start()`` ... ``stop()``: c10's ``LOG(WARNING)`` messages (not ``TORCH_WARN``, which
    reaches Python's ``warnings``) are not printed in between; ``stop()`` restores the level
    found at ``start()``. A level already at ``ERROR`` or above is left alone."""

    def __init__(self):
        self._flag = None
        self._saved = None

    def start(self) -> None:
        if self._saved is not None:
            return
        self._flag = self._flag or _c10_log_level()
        if self._flag is not None and self._flag.value < _C10_ERROR:
            self._saved = self._flag.value
            self._flag.value = _C10_ERROR

    def stop(self) -> None:
        if self._saved is not None:
            self._flag.value = self._saved
            self._saved = None
