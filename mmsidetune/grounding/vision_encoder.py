"""The frozen vision encoder of TransVG / M2IST: ResNet (C5) + 1x1 projection + DETR encoder.

TransVG-R50, the M2IST paper's base model (docs/m2ist.md, "Structure"): ResNet-50 with frozen
BN, C5 only (stride 32) -> 1x1 conv to d=256 -> 6-layer post-norm DETR transformer encoder
(8 heads, FFN 2048) with sine positions. Built from mmdet's ``ResNet``,
``DetrTransformerEncoder`` and ``SinePositionalEncoding``; nothing of mmdet is copied. The
tuning methods read or adapt its layers by forward hooks
(:class:`~mmsidetune.grounding.GroundingEncoders`).
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.layers import DetrTransformerEncoder, SinePositionalEncoding
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .transvg import load_transvg_detr

__all__ = ['DETRVisionEncoder', 'detr_encoder']


def detr_encoder(num_layers: int, embed_dims: int, num_heads: int, feedforward_channels: int,
                 dropout: float) -> DetrTransformerEncoder:
    """mmdet's post-norm DETR encoder as TransVG builds it (batch-first attention, ReLU FFN):
    ``(B, N, embed_dims)`` -> the same shape; the DETR layers of the vision encoder and the
    VL encoder of the grounder."""
    return DetrTransformerEncoder(
        num_layers=num_layers,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads, attn_drop=dropout,
                               proj_drop=dropout, batch_first=True),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=feedforward_channels,
                         num_fcs=2, ffn_drop=dropout, act_cfg=dict(type='ReLU', inplace=True))))


@MODELS.register_module()
class DETRVisionEncoder(BaseModule):
    """ResNet C5 + ``input_proj`` + DETR encoder.

    ::

        img (B,3,H,W) -> resnet -> C5 (B,Cr,h,w) -> input_proj -> z0 (B,d,h,w) --flatten-->
        (B,hw,d) + sine pos -> [DETR encoder layer i: self_attn.attn -> a_i ; ffn fc2 -> f_i] x N
        -> x_N (B,hw,d)

    (a_i, f_i: the sub-layer outputs the M2IST side network taps and the adapter baseline
    adapts, see :class:`~mmsidetune.grounding.GroundingEncoders`.)

    Args:
        resnet (dict): config of the CNN, built with mmengine's ``MODELS`` (default: mmdet's
            ResNet-50, frozen BN in eval mode, C5 only, stem + layer1 frozen as in TransVG).
            Only the last output is used.
        embed_dims (int): d, the encoder width. Default 256.
        num_layers (int): DETR encoder layers N. Default 6.
        num_heads (int): attention heads. Default 8.
        feedforward_channels (int): FFN hidden width. Default 2048.
        dropout (float): DETR dropout (attention weights, after attention, inside and after the
            FFN). Default 0.1.
        checkpoint (str, optional): TransVG DETR-R50 checkpoint (e.g. ``detr-r50-unc.pth``)
            loaded by :meth:`init_weights` through :func:`load_transvg_detr`.
        checkpoint_prefix (str): key prefix of the encoder inside the checkpoint ('' for TransVG's
            DETR files, ``'visumodel.'`` for a whole TransVG model).

    Forward returns a dict: ``feats`` x_N (B, hw, d), ``z0`` flattened input_proj(C5)
    (B, hw, d), ``mask`` (B, hw) bool, True = padding (pixel mask downsampled to C5 by nearest
    interpolation, as DETR), ``size`` (h, w).
    """

    def __init__(self,
                 resnet: dict = dict(
                     type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(3, ),
                     frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=False),
                     norm_eval=True, style='pytorch'),
                 embed_dims: int = 256,
                 num_layers: int = 6,
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.1,
                 checkpoint: Optional[str] = None,
                 checkpoint_prefix: str = '',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % 2:
            raise ValueError(f'embed_dims must be even for the sine encoding, got {embed_dims}')
        self.resnet = MODELS.build(resnet)
        self.input_proj = nn.Conv2d(self.resnet.feat_dim, embed_dims, kernel_size=1)
        self.positional_encoding = SinePositionalEncoding(num_feats=embed_dims // 2,
                                                          normalize=True)
        self.encoder = detr_encoder(num_layers, embed_dims, num_heads, feedforward_channels,
                                    dropout)
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.checkpoint = checkpoint
        self.checkpoint_prefix = checkpoint_prefix

    def init_weights(self) -> None:
        """mmdet's initialisation, then the TransVG checkpoint when one is configured.

        Raises:
            FileNotFoundError / KeyError: see :func:`load_transvg_detr`.
        """
        super().init_weights()
        if self.checkpoint is not None:
            load_transvg_detr(self, self.checkpoint, prefix=self.checkpoint_prefix)

    def forward(self, img: torch.Tensor, pixel_mask: torch.Tensor) -> Dict:
        """Encode images (B, 3, H, W) with their pixel mask (B, H, W), True = padding."""
        if pixel_mask.shape != (img.shape[0], ) + img.shape[2:]:
            raise ValueError(f'pixel_mask {tuple(pixel_mask.shape)} does not match images '
                             f'{tuple(img.shape)}')
        c5 = self.resnet(img)[-1]
        mask = F.interpolate(pixel_mask[None].float(), size=c5.shape[-2:])[0].bool()
        z0 = self.input_proj(c5)
        pos = self.positional_encoding(mask).flatten(2).transpose(1, 2)
        z0 = z0.flatten(2).transpose(1, 2)
        mask = mask.flatten(1)
        feats = self.encoder(query=z0, query_pos=pos, key_padding_mask=mask)
        return dict(feats=feats, z0=z0, mask=mask, size=tuple(c5.shape[-2:]))
