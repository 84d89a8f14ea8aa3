"""Runner hooks; importing registers them in mmengine's root ``HOOKS``."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .check_invalid_loss_hook import (FiniteLossHook, NoGradientError, NonFiniteError,
                                      non_finite_tensors)
from .training_cost_hook import TrainingCostHook

__all__ = ['TrainingCostHook', 'AtomicCheckpointHook', 'FiniteLossHook', 'NonFiniteError',
           'NoGradientError', 'non_finite_tensors']
