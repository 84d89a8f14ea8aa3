"""Cost accounting: trainable parameters, training memory and step time (SPEC.md section 3)."""
from .accounting import (MB, ParamCount, SavedTensorMeter, StepTimer, count_parameters,
                         gradient_bytes, optimizer_state_bytes, parameter_bytes, unwrap_model)

__all__ = [
    'MB', 'ParamCount', 'SavedTensorMeter', 'StepTimer', 'count_parameters', 'gradient_bytes',
    'optimizer_state_bytes', 'parameter_bytes', 'unwrap_model'
]
