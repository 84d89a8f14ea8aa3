"""Canvas -> original image box mapping (the inverse of the grounding pipelines)."""
from typing import Mapping

import torch
from torch import Tensor

__all__ = ['canvas_to_original']


def canvas_to_original(bboxes: Tensor, metainfo: Mapping) -> Tensor:
    """Map boxes from canvas pixels back to original image pixels.

    Two routes, chosen by what ``metainfo`` holds:

    * ``homography_matrix`` (packed by :class:`PackGroundingInputs`; mmdet's ``Resize`` and
      ``RandomFlip`` and this package's crop and pad compose it): its inverse, exact through any
      chain of resize, crop, flip and pad.
    * otherwise the M2IST contract's keys: subtract ``pad_offset`` (top, left), undo a horizontal
      ``flip`` inside ``img_shape``, divide by ``scale_factor`` (w, h). Exact for crop-free
      pipelines with one resize (every test pipeline); ``scale_factor`` only describes mmdet's
      last ``Resize``.

    The result is clipped to ``ori_shape``.

    Args:
        bboxes (Tensor): (N, 4) xyxy in canvas pixels.
        metainfo (Mapping): a sample's metainfo (``DetDataSample.metainfo`` or a results dict).

    Returns:
        Tensor: (N, 4) xyxy in original image pixels, same dtype as ``bboxes``.

    Raises:
        KeyError: a key a route needs is missing.
    """
    boxes = bboxes.detach().to(torch.float64).reshape(-1, 4)
    if metainfo.get('homography_matrix') is not None:
        matrix = torch.as_tensor(metainfo['homography_matrix'], dtype=torch.float64)
        inverse = torch.linalg.inv(matrix)
        corners = torch.stack([boxes[:, [0, 1]], boxes[:, [2, 3]]], dim=1)  # (N, 2, 2)
        ones = torch.ones_like(corners[..., :1])
        mapped = torch.cat([corners, ones], dim=-1) @ inverse.T
        mapped = mapped[..., :2] / mapped[..., 2:]
        x, y = mapped[..., 0], mapped[..., 1]
        out = torch.stack([x.min(1).values, y.min(1).values, x.max(1).values, y.max(1).values], 1)
    else:
        top, left = metainfo['pad_offset']
        out = boxes - boxes.new_tensor([left, top, left, top])
        if metainfo.get('flip') and metainfo.get('flip_direction', 'horizontal') == 'horizontal':
            width = metainfo['img_shape'][1]
            out = torch.stack([width - out[:, 2], out[:, 1], width - out[:, 0], out[:, 3]], 1)
        w_scale, h_scale = metainfo['scale_factor']
        out = out / out.new_tensor([w_scale, h_scale, w_scale, h_scale])
    h, w = metainfo['ori_shape'][:2]
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out.to(bboxes.dtype)
