"""M3ISA: the Mixture of Multi-Modal Interactive Side Adapters' layers (M2IST paper, Fig. 2).

One M3ISA per DETR encoder layer i, paired with a BERT layer. Each reads the frozen encoders'
taps (a_i, f_i, h_i, g_i) and never writes back into the frozen streams::

    IEA_i:  s^v_i = U_i(ReLU(D^v_i a_i))                     D^v_i: dv -> b,  U_i: b -> dv
            r     = ReLU(D^l_i h_i)                          D^l_i: dl -> b
            s^l_i = LN_att,i([P^l_i r ; U_i r])               P^l_i: b -> dl - dv (U_i shared)
    VEA_i:  e^v_i = 0.1 * W_up(ReLU(W_down LN(f_i)))         dv -> b -> dv
    LEA_i:  e^l_i = LN_out,i(0.1 * W_up(ReLU(W_down LN(g_i))))   dl -> b -> dl

VEA and LEA are the package's one bottleneck adapter
(:class:`~mmsidetune.tuners.layers.BottleneckAdapter` with a new trainable LayerNorm, ReLU,
scale 0.1 and PyTorch's default init: their outputs are not in the frozen stream). LN_att,i /
LN_out,i are BERT's own frozen LayerNorms of the paired layer. The fixed, unweighted mixture of
the six M3ISAs and the taps are the :class:`~mmsidetune.grounding.M2IST` tuning method's
(docs/m2ist.md, "Structure"). With dv=256, dl=768, b=128 and 6 layers the M3ISAs hold
2,975,232 parameters (about 2.99 M by the paper's layer sizes; the paper's table says 3.19 M).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..tuners.layers import BottleneckAdapter

__all__ = ['VEA', 'LEA', 'IEA', 'M3ISA']


class VEA(BottleneckAdapter):
    """Visual Encoder Adapter: e^v_i = s W_up ReLU(W_down LN(f_i)); (B, N, dv) -> (B, N, dv).

    Args:
        dims (int): dv. bottleneck (int): b. scale (float): s (0.1 in the paper).
    """

    def __init__(self, dims: int, bottleneck: int, scale: float):
        super().__init__(dims, bottleneck, act_layer=nn.ReLU, scale=scale, with_norm=True,
                         zero_init=False)


class LEA(VEA):
    """Language Encoder Adapter: e^l_i = LN_out,i(s W_up ReLU(W_down LN(g_i))); (B, L, dl)."""

    def forward(self, g: torch.Tensor, ln_out: nn.LayerNorm) -> torch.Tensor:
        return ln_out(super().forward(g))


class IEA(nn.Module):
    """Inter-modality Encoder Adapter with one up-projection U_i shared by both modalities.

    Args:
        visual_dims (int): dv. text_dims (int): dl, must exceed dv (P^l_i fills the rest).
        bottleneck (int): b.

    Raises:
        ValueError: if ``text_dims <= visual_dims``.
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

    def reset_parameters(self) -> None:
        """PyTorch's default ``nn.Linear`` init for the four projections."""
        for layer in (self.down_visual, self.down_text, self.up_shared, self.proj_text):
            layer.reset_parameters()

    def forward(self, a: torch.Tensor, h: torch.Tensor,
                ln_att: nn.LayerNorm) -> Tuple[torch.Tensor, torch.Tensor]:
        """a_i (B, N, dv), h_i (B, L, dl) -> (s^v_i (B, N, dv), s^l_i (B, L, dl))."""
        s_v = self.up_shared(F.relu(self.down_visual(a)))
        r = F.relu(self.down_text(h))
        s_l = ln_att(torch.cat([self.proj_text(r), self.up_shared(r)], dim=-1))
        return s_v, s_l


class M3ISA(nn.Module):
    """One side adapter group: IEA + VEA + LEA for DETR layer i and its paired BERT layer.

    Args:
        visual_dims (int): dv. text_dims (int): dl (> dv). bottleneck (int): b. Default 128.
        scale (float): VEA / LEA output scale. Default 0.1.
    """

    def __init__(self, visual_dims: int, text_dims: int, bottleneck: int = 128,
                 scale: float = 0.1):
        super().__init__()
        self.iea = IEA(visual_dims, text_dims, bottleneck)
        self.vea = VEA(visual_dims, bottleneck, scale)
        self.lea = LEA(text_dims, bottleneck, scale)

    def reset_parameters(self) -> None:
        """Re-draw every layer's initialisation."""
        for layer in (self.iea, self.vea, self.lea):
            layer.reset_parameters()

    def forward(self, a, f, h, g, ln_att, ln_out) -> Tuple[torch.Tensor, torch.Tensor]:
        """Taps of pair i -> this M3ISA's visual (B, N, dv) and text (B, L, dl) terms."""
        s_v, s_l = self.iea(a, h, ln_att)
        return s_v + self.vea(f), s_l + self.lea(g, ln_out)
