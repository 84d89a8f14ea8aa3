"""mmseg's ``IoUMetric`` that also reports per-class IoU and keeps the confusion matrix.

Used by the accuracy bench (docs/accuracy.md): the summary (``aAcc``, ``mIoU``, ``mAcc``, in %)
is mmseg's own; this subclass adds ``IoU.<class>`` (in %, ``nan`` for a class absent from both
labels and predictions) and keeps the summed confusion matrix in :attr:`confusion`.
"""
from typing import Dict, Sequence

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

__all__ = ['ConfusionIoUMetric']


@METRICS.register_module()
class ConfusionIoUMetric(IoUMetric):
    """``IoUMetric`` (``iou_metrics=['mIoU']``) plus per-class IoU and the confusion matrix.

    Attributes:
        confusion (np.ndarray): ``(K, K)`` int64 pixel counts of the last :meth:`evaluate`,
            row = label, column = prediction, pixels with ``ignore_index`` left out.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.confusion = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_classes = len(self.dataset_meta['classes'])
        start = len(self.results)
        super().process(data_batch, data_samples)
        for i, data_sample in enumerate(data_samples):
            pred = data_sample['pred_sem_seg']['data'].squeeze()
            label = data_sample['gt_sem_seg']['data'].squeeze().to(pred)
            keep = label != self.ignore_index
            cm = torch.bincount(label[keep].long() * num_classes + pred[keep].long(),
                                minlength=num_classes**2).reshape(num_classes, num_classes)
            self.results[start + i] = (*self.results[start + i], cm.cpu())

    def compute_metrics(self, results: list) -> Dict[str, float]:
        self.confusion = torch.stack([r[4] for r in results]).sum(0).numpy().astype(np.int64)
        metrics = super().compute_metrics([r[:4] for r in results])
        cm = self.confusion
        inter = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - inter
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = inter / union
        for name, value in zip(self.dataset_meta['classes'], iou):
            metrics[f'IoU.{name}'] = float(np.round(value * 100, 2))
        return metrics
