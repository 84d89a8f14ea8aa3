"""Metrics; importing registers them in mmengine's root ``METRICS``."""
from .grounding_accuracy import GroundingAccuracy

try:  # mmseg is optional for mmdet users
    from .confusion_iou import ConfusionIoUMetric
except ImportError:  # pragma: no cover
    ConfusionIoUMetric = None

__all__ = ['GroundingAccuracy', 'ConfusionIoUMetric']
