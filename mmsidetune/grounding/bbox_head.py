"""The [REG] box head of TransVG / M2IST: a 3-layer MLP + sigmoid, L1 + GIoU loss."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.model import BaseModule
from mmengine.registry import MODELS

__all__ = ['GroundingBoxHead']


@MODELS.register_module()
class GroundingBoxHead(BaseModule):
    """[REG] (B, d) -> MLP d-d-d-4 (ReLU between) -> sigmoid -> normalised (cx, cy, w, h).

    Loss (docs/m2ist.md, "Structure"): L1 on normalised cxcywh (summed over the 4 coordinates,
    averaged over the batch, as TransVG) + lambda * (1 - GIoU) averaged over the batch,
    lambda = 1 by default (``loss_giou.loss_weight``). Both losses are mmdet's, built from
    config.

    Args:
        embed_dims (int): d. Default 256.
        num_layers (int): MLP layers. Default 3.
        smooth_l1 (bool): use mmdet's ``SmoothL1Loss`` instead of ``L1Loss`` (the paper's text
            names smooth-L1, TransVG's code uses L1). Default False.
        loss_bbox (dict, optional): override the box loss config; not together with smooth_l1.
        loss_giou (dict): GIoU loss config. Default mmdet ``GIoULoss`` weight 1.
    """

    def __init__(self, embed_dims: int = 256, num_layers: int = 3, smooth_l1: bool = False,
                 loss_bbox: Optional[dict] = None,
                 loss_giou: dict = dict(type='mmdet.GIoULoss', loss_weight=1.0),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if loss_bbox is not None and smooth_l1:
            raise ValueError('give either smooth_l1=True or loss_bbox, not both')
        if loss_bbox is None:
            loss_bbox = dict(type='mmdet.SmoothL1Loss' if smooth_l1 else 'mmdet.L1Loss',
                             loss_weight=1.0)
        dims = [embed_dims] * num_layers + [4]
        self.mlp = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_giou = MODELS.build(loss_giou)

    def forward(self, reg: torch.Tensor) -> torch.Tensor:
        """[REG] features (B, d) -> boxes (B, 4), normalised (cx, cy, w, h) in [0, 1]."""
        for i, fc in enumerate(self.mlp):
            reg = fc(reg) if i == len(self.mlp) - 1 else F.relu(fc(reg))
        return reg.sigmoid()

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """pred, target: (B, 4) normalised cxcywh -> dict(loss_bbox, loss_giou).

        Raises:
            ValueError: for a degenerate target box (width or height <= 0).
        """
        bad = (target[:, 2:] <= 0).any(dim=1)
        if bad.any():
            raise ValueError(f'degenerate ground-truth boxes (w or h <= 0) at batch positions '
                             f'{bad.nonzero().flatten().tolist()}: {target[bad].tolist()}')
        num = pred.shape[0]
        return dict(
            loss_bbox=self.loss_bbox(pred, target, avg_factor=num),
            loss_giou=self.loss_giou(bbox_cxcywh_to_xyxy(pred), bbox_cxcywh_to_xyxy(target),
                                     avg_factor=num))
