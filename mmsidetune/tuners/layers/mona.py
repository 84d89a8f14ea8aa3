"""Mona, the multi-cognitive visual adapter (Yin et al., "5%>100%: Breaking Performance Shackles
of Full Fine-Tuning on Visual Recognition Tasks", CVPR 2025, section 3; docs/methods/mona.md).

For a token stream ``x`` (B, H*W, d) on an ``H x W`` grid, Mona returns ``x + MonaDelta(x)``
with::

    z = LayerNorm(x) * gamma + x * gammax          scaled input (gamma = 1e-6, gammax = 1 at init)
    p = project1(z)                                 d -> 64
    q = (dw3(p) + dw5(p) + dw7(p)) / 3 + p          multi-scale depthwise convolutions on the grid
    q = q + projector(q)                            1x1 convolution
    delta = project2(dropout(GELU(q)))              64 -> d

:class:`MonaAdapter` computes ``delta``; the method adds it (docs/methods/mona.md). The public
code (``Leiyi-Hu/mona``, ``mmdet/models/backbones/swin_transformer_mona.py``) initialises
``project2`` as every linear of its backbone (truncated normal, std 0.02), so its step 0 differs
from the frozen trunk; here ``project2`` starts at zero (``zero_init=True``), so the output equals
the frozen trunk's at step 0 and only ``project2`` gets a gradient in the first step.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['MonaAdapter', 'MultiScaleDepthwise']


class MultiScaleDepthwise(nn.Module):
    """Mona's convolution block on a ``(B, C, H, W)`` map: ``q = mean(dw3, dw5, dw7)(p) + p``,
    then ``q + projector(q)`` (a 1x1 convolution).

    Args:
        channels (int): ``C``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.conv2 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.conv3 = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.projector = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (self.conv1(x) + self.conv2(x) + self.conv3(x)) / 3.0 + x
        return x + self.projector(x)


class MonaAdapter(nn.Module):
    """The branch ``delta`` of one Mona (module docstring): ``(B, H*W, d)`` -> ``(B, H*W, d)``.

    Parameters: ``d * h + h`` (project1), ``h * d + d`` (project2), ``h * (9 + 25 + 49) + 3 h``
    (depthwise), ``h * h + h`` (projector), ``2 d`` (norm), ``2 d`` (gamma, gammax): with
    ``h = 64``, ``133 d + 9728``.

    Args:
        dims (int): stream width ``d``.
        hidden_dims (int): ``h``. Defaults to 64 (the public code's).
        dropout (float): dropout before ``project2``. Defaults to 0.1 (the public code's).
        zero_init (bool): ``project2`` zero at init. Defaults to True.

    Raises:
        ValueError: for a non-positive width, or (in forward) a token count that is not
            ``H * W``.
    """

    def __init__(self, dims: int, hidden_dims: int = 64, dropout: float = 0.1,
                 zero_init: bool = True):
        super().__init__()
        if dims <= 0 or hidden_dims <= 0:
            raise ValueError(f'MonaAdapter: widths must be positive, got {dims}, {hidden_dims}')
        self.zero_init = zero_init
        self.norm = nn.LayerNorm(dims)
        self.gamma = nn.Parameter(torch.empty(dims))
        self.gammax = nn.Parameter(torch.empty(dims))
        self.project1 = nn.Linear(dims, hidden_dims)
        self.adapter_conv = MultiScaleDepthwise(hidden_dims)
        self.dropout = nn.Dropout(dropout)
        self.project2 = nn.Linear(hidden_dims, dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """gamma 1e-6, gammax 1 (the paper's scaled LayerNorm); truncated-normal (std 0.02)
        linears with zero biases, PyTorch's default convolutions; ``project2`` zero with
        ``zero_init``."""
        self.norm.reset_parameters()
        nn.init.constant_(self.gamma, 1e-6)
        nn.init.ones_(self.gammax)
        for linear in (self.project1, self.project2):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
        for m in self.adapter_conv.children():
            m.reset_parameters()
        if self.zero_init:
            nn.init.zeros_(self.project2.weight)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw_shape
        if N != H * W:
            raise ValueError(f'MonaAdapter: {N} tokens do not form the {H}x{W} grid')
        z = self.norm(x) * self.gamma + x * self.gammax
        p = self.project1(z)
        p = p.transpose(1, 2).reshape(B, -1, H, W)
        q = self.adapter_conv(p).flatten(2).transpose(1, 2)
        return self.project2(self.dropout(F.gelu(q)))
