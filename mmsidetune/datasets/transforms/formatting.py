"""Packing one grounding sample for the model (M2IST contract, "One sample")."""
from mmdet.datasets.transforms import PackDetInputs
from mmdet.structures.bbox import BaseBoxes
from mmengine.registry import TRANSFORMS

__all__ = ['PackGroundingInputs']

GROUNDING_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'pad_shape', 'pad_offset',
                       'scale_factor', 'flip', 'flip_direction', 'homography_matrix', 'text',
                       'gt_bbox_ori', 'dataset_key', 'split')


@TRANSFORMS.register_module()
class PackGroundingInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` with the grounding meta keys and plain-tensor boxes.

    Returns ``dict(inputs=uint8 tensor (3, Hp, Wp), data_samples=DetDataSample)`` with
    ``data_sample.text`` (the possibly flip-swapped phrase), ``gt_instances.bboxes`` a float tensor
    (N, 4) xyxy in canvas pixels and ``gt_instances.labels`` (N,) long, and the meta keys above
    (``homography_matrix``: 3x3 float32 mapping original pixels to canvas pixels through every
    resize/crop/flip/pad, see :func:`canvas_to_original`).

    Args:
        meta_keys (tuple[str]): meta keys to pack. Defaults to ``GROUNDING_META_KEYS``.
    """

    def __init__(self, meta_keys=GROUNDING_META_KEYS):
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        gt = packed['data_samples'].gt_instances
        if isinstance(gt.get('bboxes'), BaseBoxes):
            gt.bboxes = gt.bboxes.tensor
        return packed
