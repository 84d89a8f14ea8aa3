"""Metrics; importing registers them in mmengine's root ``METRICS``."""
from .grounding_accuracy import GroundingAccuracy

__all__ = ['GroundingAccuracy']
