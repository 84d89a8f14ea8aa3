"""Cost accounting: trainable parameters, training memory and step time (SPEC.md section 3)."""
from .accounting import (MB, ParamCount, SavedTensorMeter, StepTimer, count_parameters,
                         cpu_training_bytes, gradient_bytes, optimizer_state_bytes, parameter_bytes,
                         unwrap_model)
from .bench import (BenchError, apply_method, format_table, run_bench, set_img_size, use_amp,
                    write_report)

__all__ = [
    'BenchError', 'apply_method', 'format_table', 'run_bench', 'set_img_size', 'use_amp',
    'write_report', 'MB', 'ParamCount', 'SavedTensorMeter', 'StepTimer', 'count_parameters',
    'cpu_training_bytes', 'gradient_bytes', 'optimizer_state_bytes', 'parameter_bytes',
    'unwrap_model'
]
