"""The frozen vision encoder of TransVG / M2IST: ResNet (C5) + 1x1 projection + DETR encoder.

SPEC.md section 2, "Base model": ResNet-50 with frozen BN, C5 only (stride 32) -> 1x1 conv to
d=256 -> 6-layer post-norm DETR transformer encoder (8 heads, FFN 2048) with sine positions.
Built from mmdet's ``ResNet``, ``DetrTransformerEncoder`` and ``SinePositionalEncoding``; the
M3ISA taps are read by forward hooks (see :mod:`.taps`), nothing of mmdet is copied.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.layers import DetrTransformerEncoder, SinePositionalEncoding
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ..tuners.taps import TapRecorder
from .transvg import load_transvg_detr

__all__ = ['DETRVisionEncoder']


@MODELS.register_module()
class DETRVisionEncoder(BaseModule):
    """ResNet C5 + ``input_proj`` + DETR encoder, exposing the M2IST taps a_i and f_i.

    ::

        img (B,3,H,W) -> resnet -> C5 (B,Cr,h,w) -> input_proj -> z0 (B,d,h,w) --flatten-->
        (B,hw,d) + sine pos -> [DETR encoder layer i: self_attn.attn -> a_i ; ffn fc2 -> f_i] x N
        -> x_N (B,hw,d)

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
    interpolation, as DETR), ``size`` (h, w), and with ``record_taps=True`` ``attn_taps`` /
    ``ffn_taps``: lists of N tensors (B, hw, d) — a_i, the self-attention output, and f_i, the
    FFN output, both before dropout + residual (SPEC.md section 2, "Taps").
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
        self.encoder = DetrTransformerEncoder(
            num_layers=num_layers,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads,
                                   attn_drop=dropout, proj_drop=dropout, batch_first=True),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=feedforward_channels,
                             num_fcs=2, ffn_drop=dropout,
                             act_cfg=dict(type='ReLU', inplace=True))))
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.checkpoint = checkpoint
        self.checkpoint_prefix = checkpoint_prefix
        self.taps = TapRecorder()
        for i, (attn, ffn) in enumerate(self.tap_modules()):
            self.taps.add(attn, f'a{i}', pick=self._pick_attn)
            self.taps.add(ffn, f'f{i}')

    @staticmethod
    def _pick_attn(output):
        # mmcv's MultiheadAttention (batch_first) calls nn.MultiheadAttention sequence-first.
        return output[0].transpose(0, 1)

    def tap_modules(self) -> List[Tuple[nn.Module, nn.Module]]:
        """Per encoder layer: (``nn.MultiheadAttention`` giving a_i, FFN second linear giving f_i).

        Their outputs are the attention / FFN outputs before dropout and the residual add.
        """
        points = []
        for layer in self.encoder.layers:
            fc2 = layer.ffn.layers[-2]
            if not isinstance(fc2, nn.Linear) or not layer.self_attn.batch_first:
                raise TypeError('unexpected DETR encoder layer structure: the FFN must end with '
                                'Linear + Dropout and attention must be batch_first')
            points.append((layer.self_attn.attn, fc2))
        return points

    def init_weights(self) -> None:
        """mmdet's initialisation, then the TransVG checkpoint when one is configured.

        Raises:
            FileNotFoundError / KeyError: see :func:`load_transvg_detr`.
        """
        super().init_weights()
        if self.checkpoint is not None:
            load_transvg_detr(self, self.checkpoint, prefix=self.checkpoint_prefix)

    def forward(self, img: torch.Tensor, pixel_mask: torch.Tensor,
                record_taps: bool = False) -> Dict:
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
        with self.taps.record(record_taps) as store:
            feats = self.encoder(query=z0, query_pos=pos, key_padding_mask=mask)
        out = dict(feats=feats, z0=z0, mask=mask, size=tuple(c5.shape[-2:]))
        if record_taps:
            out['attn_taps'] = self.taps.taps(store, 'a', self.num_layers)
            out['ffn_taps'] = self.taps.taps(store, 'f', self.num_layers)
        return out
