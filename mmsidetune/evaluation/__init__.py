"""Evaluation; importing registers the metrics in mmengine's root ``METRICS``."""
from .metrics import ConfusionIoUMetric, GroundingAccuracy

__all__ = ['GroundingAccuracy', 'ConfusionIoUMetric']
