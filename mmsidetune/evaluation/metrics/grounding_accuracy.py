"""Acc@0.5 for referring expression comprehension (docs/refexp_data.md, "Metric")."""
from collections import OrderedDict
from typing import Dict, List, Sequence

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

__all__ = ['GroundingAccuracy']


@METRICS.register_module()
class GroundingAccuracy(BaseMetric):
    """Share of expressions whose predicted box has IoU >= ``iou_thr`` with the ground truth, in %.

    Per sample it reads ``pred_instances.bboxes`` (1, 4) xyxy in original image pixels (the first
    box if several) and the metainfo ``gt_bbox_ori`` (4 floats, xyxy, original pixels) and
    ``split``. IoU is mmdet's ``bbox_overlaps`` on continuous coordinates (no +1). Per-sample hits
    are what each rank keeps; mmengine's ``BaseMetric.evaluate`` gathers them from all ranks
    before :meth:`compute_metrics`, so the result counts every expression once, whatever the
    number of processes.

    Returns ``{'Acc@0.5': %}`` over all samples, plus ``'<split>/Acc@0.5'`` per split when the
    evaluated data holds several splits (e.g. a ``ConcatDataset`` of val, testA and testB).

    Args:
        iou_thr (float): IoU threshold. Defaults to 0.5 (key ``Acc@0.5``).
        collect_device (str): ``'cpu'`` or ``'gpu'``, as mmengine's ``BaseMetric``.
        prefix (str, optional): key prefix, as mmengine's ``BaseMetric``. Defaults to none.

    Raises:
        ValueError: ``iou_thr`` outside (0, 1]; a sample without a predicted box.
    """

    default_prefix = ''  # keys as the contract names them: 'Acc@0.5', '<split>/Acc@0.5'

    def __init__(self, iou_thr: float = 0.5, collect_device: str = 'cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 < iou_thr <= 1:
            raise ValueError(f'GroundingAccuracy: iou_thr must be in (0, 1], got {iou_thr}')
        self.iou_thr = iou_thr
        self.key = f'Acc@{iou_thr:g}'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = torch.as_tensor(sample['pred_instances']['bboxes'], dtype=torch.float32)
            if pred.numel() < 4:
                raise ValueError(f'GroundingAccuracy: no predicted box for {sample.get("img_path")}'
                                 f' ({sample.get("text")!r})')
            gt = torch.as_tensor(sample['gt_bbox_ori'], dtype=torch.float32).reshape(1, 4)
            iou = bbox_overlaps(pred.reshape(-1, 4)[:1].cpu(), gt)[0, 0].item()
            self.results.append((sample.get('split', ''), iou >= self.iou_thr))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        if not results:
            raise ValueError('GroundingAccuracy: no predictions to evaluate (the evaluation '
                             'dataset is empty)')
        splits = OrderedDict()
        for split, hit in results:
            splits.setdefault(split, []).append(hit)
        metrics = {self.key: 100.0 * sum(hit for _, hit in results) / len(results)}
        if len(splits) > 1:
            for split, hits in splits.items():
                metrics[f'{split}/{self.key}'] = 100.0 * sum(hits) / len(hits)
        return metrics
