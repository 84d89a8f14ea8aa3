"""Evaluation; importing registers the metrics in mmengine's root ``METRICS``."""
from .metrics import GroundingAccuracy

__all__ = ['GroundingAccuracy']
