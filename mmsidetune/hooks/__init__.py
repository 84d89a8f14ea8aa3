"""Runner hooks; importing registers them in mmengine's root ``HOOKS``."""
from .training_cost_hook import TrainingCostHook

__all__ = ['TrainingCostHook']
