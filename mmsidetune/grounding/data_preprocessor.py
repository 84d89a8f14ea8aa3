"""Batching for grounding: ImageNet normalisation, stacking, and the pixel mask (True = padding)."""
from typing import List

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmengine.registry import MODELS

__all__ = ['GroundingDataPreprocessor', 'build_pixel_mask']


def build_pixel_mask(data_samples: List, batch_shape) -> torch.Tensor:
    """(B, Hb, Wb) bool mask, True outside each sample's image content (M2IST_CONTRACT.md).

    The content of sample k is ``img_shape`` (h, w) placed at ``pad_offset`` (top, left) of its
    canvas; everything else (the canvas padding, and any batch padding beyond it) is True.

    Raises:
        KeyError: when a sample lacks ``img_shape`` or ``pad_offset`` in its metainfo.
        ValueError: when the content does not fit in the batch canvas.
    """
    hb, wb = batch_shape
    mask = torch.ones(len(data_samples), hb, wb, dtype=torch.bool)
    for k, sample in enumerate(data_samples):
        missing = [key for key in ('img_shape', 'pad_offset') if key not in sample.metainfo]
        if missing:
            raise KeyError(f'sample {k} has no {missing} in its metainfo: the grounding pipeline '
                           '(GroundingPad + PackGroundingInputs) must record them')
        h, w = sample.img_shape[:2]
        top, left = (int(v) for v in sample.pad_offset)
        if top < 0 or left < 0 or top + h > hb or left + w > wb:
            raise ValueError(f'sample {k}: content {h}x{w} at offset ({top}, {left}) does not '
                             f'fit the {hb}x{wb} batch canvas')
        mask[k, top:top + h, left:left + w] = False
    return mask


@MODELS.register_module()
class GroundingDataPreprocessor(DetDataPreprocessor):
    """mmdet's ``DetDataPreprocessor`` (normalise with ``mean``/``std``, ``bgr_to_rgb``, stack)
    plus the pixel mask, stored on each data sample as ``pixel_mask`` (Hb, Wb) bool.

    Configure with ImageNet statistics, as TransVG and M2IST (docs/refexp_data.md; the pipeline
    does not normalise)::

        dict(type='GroundingDataPreprocessor', mean=[123.675, 116.28, 103.53],
             std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        samples = data['data_samples']
        if samples is not None:
            mask = build_pixel_mask(samples, data['inputs'].shape[-2:]).to(data['inputs'].device)
            for sample, m in zip(samples, mask):
                sample.pixel_mask = m
        return data
