"""M3ISA: the Mixture of Multi-Modal Interactive Side Adapters (M2IST, SPEC.md section 2).

One M3ISA per DETR encoder layer i, paired with a BERT layer. Each reads the frozen encoders'
taps (a_i, f_i, h_i, g_i) and never writes back into the frozen streams::

    IEA_i:  s^v_i = U_i(ReLU(D^v_i a_i))                     D^v_i: dv -> b,  U_i: b -> dv
            r     = ReLU(D^l_i h_i)                          D^l_i: dl -> b
            s^l_i = LN_att,i([P^l_i r ; U_i r])               P^l_i: b -> dl - dv (U_i shared)
    VEA_i:  e^v_i = 0.1 * W_up(ReLU(W_down LN(f_i)))         dv -> b -> dv
    LEA_i:  e^l_i = LN_out,i(0.1 * W_up(ReLU(W_down LN(g_i))))   dl -> b -> dl
    mixture (fixed, unweighted):
            visual = x^v_N + z^v_0 + sum_i (s^v_i + e^v_i)
            text   = x^l_last + E  + sum_i (s^l_i + e^l_i)

Backward keeps only the taps: each M3ISA runs inside ``torch.utils.checkpoint`` (non-reentrant),
so its bottleneck activations, LayerNorm inputs and concatenations are recomputed from the four
taps in backward (a few small matmuls) instead of being stored.

LN_att,i / LN_out,i are BERT's own frozen LayerNorms of the paired layer; the LN inside VEA/LEA
are new, trainable ones. visu_proj / text_proj (to the VL encoder width) are the first layers of
the neck (:class:`GroundingVLEncoder`), shared with the full and adapter baselines.
With dv=256, dl=768, b=128 and 6 layers the side network has 2,975,232 parameters
(SPEC: "about 2.99 M").
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.utils.checkpoint import checkpoint

__all__ = ['VEA', 'LEA', 'IEA', 'M3ISA', 'M3ISASideNetwork']


class _Bottleneck(nn.Module):
    """``scale * W_up(ReLU(W_down(LN(x))))`` with a new, trainable LN."""

    def __init__(self, dims: int, bottleneck: int, scale: float):
        super().__init__()
        self.norm = nn.LayerNorm(dims)
        self.down = nn.Linear(dims, bottleneck)
        self.up = nn.Linear(bottleneck, dims)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(F.relu(self.down(self.norm(x))))


class VEA(_Bottleneck):
    """Visual Encoder Adapter: e^v_i = 0.1 W_up ReLU(W_down LN(f_i)); (B, N, dv) -> (B, N, dv)."""


class LEA(_Bottleneck):
    """Language Encoder Adapter: e^l_i = LN_out,i(0.1 W_up ReLU(W_down LN(g_i))); (B, L, dl)."""

    def forward(self, g: torch.Tensor, ln_out: nn.LayerNorm) -> torch.Tensor:
        return ln_out(super().forward(g))


class IEA(nn.Module):
    """Inter-modality Encoder Adapter with one up-projection U_i shared by both modalities.

    Args:
        visual_dims (int): dv. text_dims (int): dl, must exceed dv (P^l_i fills the rest).
        bottleneck (int): b.
    """

    def __init__(self, visual_dims: int, text_dims: int, bottleneck: int):
        super().__init__()
        if text_dims <= visual_dims:
            raise ValueError(f'IEA concatenates P^l r ({text_dims} - {visual_dims} channels) and '
                             f'U r ({visual_dims}): text width must exceed the visual width')
        self.down_visual = nn.Linear(visual_dims, bottleneck)  # D^v_i
        self.down_text = nn.Linear(text_dims, bottleneck)  # D^l_i
        self.up_shared = nn.Linear(bottleneck, visual_dims)  # U_i
        self.proj_text = nn.Linear(bottleneck, text_dims - visual_dims)  # P^l_i

    def forward(self, a: torch.Tensor, h: torch.Tensor,
                ln_att: nn.LayerNorm) -> Tuple[torch.Tensor, torch.Tensor]:
        """a_i (B, N, dv), h_i (B, L, dl) -> (s^v_i (B, N, dv), s^l_i (B, L, dl))."""
        s_v = self.up_shared(F.relu(self.down_visual(a)))
        r = F.relu(self.down_text(h))
        s_l = ln_att(torch.cat([self.proj_text(r), self.up_shared(r)], dim=-1))
        return s_v, s_l


class M3ISA(nn.Module):
    """One side adapter group: IEA + VEA + LEA for DETR layer i and its paired BERT layer."""

    def __init__(self, visual_dims: int, text_dims: int, bottleneck: int = 128,
                 scale: float = 0.1):
        super().__init__()
        self.iea = IEA(visual_dims, text_dims, bottleneck)
        self.vea = VEA(visual_dims, bottleneck, scale)
        self.lea = LEA(text_dims, bottleneck, scale)

    def forward(self, a, f, h, g, ln_att, ln_out) -> Tuple[torch.Tensor, torch.Tensor]:
        """Taps of layer i -> this M3ISA's visual (B, N, dv) and text (B, L, dl) terms."""
        s_v, s_l = self.iea(a, h, ln_att)
        return s_v + self.vea(f), s_l + self.lea(g, ln_out)


@MODELS.register_module()
class M3ISASideNetwork(BaseModule):
    """The six (``num_layers``) M3ISAs and their fixed, unweighted mixture.

    Args:
        visual_dims (int): dv, DETR encoder width (filled in by the detector).
        text_dims (int): dl, BERT width (filled in by the detector).
        num_layers (int): M3ISAs, one per DETR encoder layer (filled in by the detector).
        bottleneck (int): b. Default 128.
        scale (float): VEA/LEA output scale. Default 0.1.
    """

    def __init__(self, visual_dims: int, text_dims: int, num_layers: int, bottleneck: int = 128,
                 scale: float = 0.1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.layers = nn.ModuleList(
            M3ISA(visual_dims, text_dims, bottleneck, scale) for _ in range(num_layers))

    def forward(self, vision: Dict, language: Dict, text_layers: Sequence[int],
                attention_layernorms: List[nn.Module],
                output_layernorms: List[nn.Module]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mix the taps of the frozen encoders.

        Args:
            vision: :class:`DETRVisionEncoder` output with taps.
            language: :class:`BertLanguageModel` output with taps.
            text_layers: BERT layer paired with each DETR layer (len = num_layers).
            attention_layernorms / output_layernorms: LN_att / LN_out of those BERT layers.

        Returns:
            visual (B, N, dv) and text (B, L, dl), before visu_proj / text_proj.
        """
        if len(text_layers) != len(self.layers):
            raise ValueError(f'{len(self.layers)} M3ISAs but {len(text_layers)} paired BERT layers')
        visual = vision['feats'] + vision['z0']
        text = language['hidden'] + language['embeddings']
        recompute = torch.is_grad_enabled()
        for i, (m3isa, j) in enumerate(zip(self.layers, text_layers)):
            args = (vision['attn_taps'][i], vision['ffn_taps'][i], language['attn_taps'][j],
                    language['ffn_taps'][j], attention_layernorms[i], output_layernorms[i])
            if recompute:  # keep only the four taps for backward
                v, t = checkpoint(m3isa, *args, use_reentrant=False)
            else:
                v, t = m3isa(*args)
            visual = visual + v
            text = text + t
        return visual, text
