"""Cost accounting: trainable parameters, training memory and step time.

Definitions: docs/cost_accounting.md.
"""
from .accounting import (MB, ParamCount, SavedTensorMeter, StepTimer, count_parameters,
                         cpu_training_bytes, gradient_bytes, optimizer_state_bytes, parameter_bytes,
                         unwrap_model)
from .bench import (BenchError, apply_method, format_table, read_report, run_bench, set_img_size,
                    use_amp, write_report)
from .memory import CATEGORIES, PROFILER_CATEGORY_MAP, StepMemory, StepMemoryMeter, model_device

__all__ = [
    'BenchError', 'apply_method', 'format_table', 'read_report', 'run_bench', 'set_img_size',
    'use_amp', 'write_report', 'MB', 'ParamCount', 'SavedTensorMeter', 'StepTimer',
    'count_parameters', 'cpu_training_bytes', 'gradient_bytes', 'optimizer_state_bytes',
    'parameter_bytes', 'unwrap_model', 'CATEGORIES', 'PROFILER_CATEGORY_MAP', 'StepMemory',
    'StepMemoryMeter', 'model_device'
]
