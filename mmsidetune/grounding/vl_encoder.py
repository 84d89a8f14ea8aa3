"""The visual-linguistic (VL) encoder of TransVG / M2IST, used as the detector's ``neck``."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .vision_encoder import detr_encoder

__all__ = ['GroundingVLEncoder']


@MODELS.register_module()
class GroundingVLEncoder(BaseModule):
    """visu_proj / text_proj, [REG] token, learned positions and a post-norm transformer encoder.

    TransVG's fusion, kept by M2IST (paper Fig. 2; docs/m2ist.md, "Structure"): tokens
    ``[REG] + L text + N visual`` (1 + 20 + 400 in the paper, 421 x 256) with a learned position
    embedding, 6-layer post-norm encoder (d=256, 8 heads, FFN 2048, dropout 0.1; mmdet's
    ``DetrTransformerEncoder``, positions added to queries and keys as in TransVG), key-padding
    mask from the text mask and the downsampled pixel mask.
    ::

        visual (B,N,dv) -visu_proj-> (B,N,d) ─┐
        text   (B,L,dl) -text_proj-> (B,L,d) ─┼─ cat [REG, text, visual] + pos -> encoder -> [REG]
        [REG] (1,d) ─────────────────────────┘                                         (B, d)

    Args:
        visual_dims (int): dv (filled in by the detector). text_dims (int): dl (idem).
        num_text_tokens (int): L (the language model's max_tokens).
        num_visual_tokens (int): N = (pad size / 32)^2, 400 for 640 x 640.
        embed_dims, num_layers, num_heads, feedforward_channels, dropout: encoder sizes.

    Raises:
        ValueError: in forward, when the token counts differ from the configured ones.
    """

    def __init__(self, visual_dims: int, text_dims: int, num_text_tokens: int = 20,
                 num_visual_tokens: int = 400, embed_dims: int = 256, num_layers: int = 6,
                 num_heads: int = 8, feedforward_channels: int = 2048, dropout: float = 0.1,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.visu_proj = nn.Linear(visual_dims, embed_dims)
        self.text_proj = nn.Linear(text_dims, embed_dims)
        self.reg_token = nn.Embedding(1, embed_dims)
        self.num_text_tokens = num_text_tokens
        self.num_visual_tokens = num_visual_tokens
        self.pos_embed = nn.Embedding(1 + num_text_tokens + num_visual_tokens, embed_dims)
        self.encoder = detr_encoder(num_layers, embed_dims, num_heads, feedforward_channels,
                                    dropout)
        self.embed_dims = embed_dims

    def forward(self, visual: torch.Tensor, visual_mask: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor) -> torch.Tensor:
        """visual (B, N, dv), text (B, L, dl), masks (B, N) / (B, L) True = padding -> (B, d)."""
        if visual.shape[1] != self.num_visual_tokens or text.shape[1] != self.num_text_tokens:
            raise ValueError(
                f'VL encoder built for {self.num_visual_tokens} visual / {self.num_text_tokens} '
                f'text tokens, got {visual.shape[1]} / {text.shape[1]}: set '
                'neck.num_visual_tokens = (pad size / 32)^2 and neck.num_text_tokens = '
                'language_model.max_tokens')
        b = visual.shape[0]
        tokens = torch.cat([self.reg_token.weight.expand(b, 1, -1), self.text_proj(text),
                            self.visu_proj(visual)], dim=1)
        mask = torch.cat([text_mask.new_zeros(b, 1), text_mask, visual_mask], dim=1)
        pos = self.pos_embed.weight.expand(b, -1, -1)
        return self.encoder(query=tokens, query_pos=pos, key_padding_mask=mask)[:, 0]
