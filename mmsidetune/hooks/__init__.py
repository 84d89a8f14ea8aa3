"""Runner hooks; importing registers them in mmengine's root ``HOOKS``."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .training_cost_hook import TrainingCostHook

__all__ = ['TrainingCostHook', 'AtomicCheckpointHook']
