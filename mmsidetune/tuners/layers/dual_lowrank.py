"""Dual low-rank linear layer and the bottleneck adapter built from it.

The weight of a :class:`DualLowRankLinear` is a sum of ``num_branches`` low-rank products
(LoRand, arXiv 2303.08509; E3VA, arXiv 2306.09729 section 3)::

    W = sum_{b=1..B} P_b K_b Q_b,   P_b: (out, r), K_b: (r, r), Q_b: (r, in)

so a ``in -> out`` layer costs ``B * (r * (in + out) + r * r) + out`` parameters instead of
``in * out + out``.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['DualLowRankLinear', 'DualLowRankAdapter']


class DualLowRankLinear(nn.Module):
    """Linear layer whose weight is a sum of low-rank products ``P_b K_b Q_b``.

    Args:
        in_features (int): Input width ``C_in``.
        out_features (int): Output width ``C_out``.
        rank (int): Rank ``r`` of every factor. Defaults to 8.
        num_branches (int): Number ``B`` of summed products. Defaults to 2 ("dual").
        bias (bool): Add a bias of shape ``(C_out,)``. Defaults to True.
        zero_init (bool): Initialise the last factor ``P`` (and the bias) to zero so that the
            layer outputs exactly zero until it is trained. Defaults to False.

    Shapes:
        input ``(..., C_in)`` -> output ``(..., C_out)``.

    Raises:
        ValueError: if a width, the rank or the branch count is not positive.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 rank: int = 8,
                 num_branches: int = 2,
                 bias: bool = True,
                 zero_init: bool = False):
        super().__init__()
        for name, value in (('in_features', in_features), ('out_features', out_features),
                            ('rank', rank), ('num_branches', num_branches)):
            if int(value) <= 0:
                raise ValueError(f'DualLowRankLinear: {name} must be positive, got {value}')
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.num_branches = num_branches
        self.zero_init = zero_init
        self.P = nn.Parameter(torch.empty(num_branches, out_features, rank))
        self.K = nn.Parameter(torch.empty(num_branches, rank, rank))
        self.Q = nn.Parameter(torch.empty(num_branches, rank, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform ``Q`` and ``P`` (as ``nn.Linear``), orthogonal ``K``, zero bias; zero ``P``
        when ``zero_init``."""
        for b in range(self.num_branches):
            nn.init.kaiming_uniform_(self.Q[b], a=math.sqrt(5))
            nn.init.orthogonal_(self.K[b])
            if self.zero_init:
                nn.init.zeros_(self.P[b])
            else:
                nn.init.kaiming_uniform_(self.P[b], a=math.sqrt(5))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, r = self.num_branches, self.rank
        # (..., C_in) -> (..., B*r): all branches' Q in one matmul.
        z = F.linear(x, self.Q.reshape(B * r, self.in_features))
        # (..., B, r) x (B, r, r) -> (..., B, r): each branch through its own K.
        z = torch.einsum('...bs,brs->...br', z.unflatten(-1, (B, r)), self.K).flatten(-2)
        # (..., B*r) -> (..., C_out): sum over branches folded into one matmul.
        weight_p = self.P.permute(1, 0, 2).reshape(self.out_features, B * r)
        return F.linear(z, weight_p, self.bias)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, out_features={self.out_features}, '
                f'rank={self.rank}, num_branches={self.num_branches}, '
                f'bias={self.bias is not None}, zero_init={self.zero_init}')


class DualLowRankAdapter(nn.Module):
    """Bottleneck adapter ``A(u) = W_up act(W_down u + b_down) + b_up`` with dual low-rank weights.

    E3VA (arXiv 2306.09729, section 3.2) uses one per Swin branch (attention and MLP), with a
    ``d -> d/2 -> d`` bottleneck, rank 8 and two branches per weight. ``W_up``'s last factor is zero
    at initialisation, so the adapter outputs exactly zero before training.

    Args:
        embed_dims (int): Width ``d`` of input and output.
        hidden_ratio (float): Bottleneck width as a fraction of ``d``. Defaults to 0.5.
        rank (int): Rank of every low-rank factor. Defaults to 8.
        num_branches (int): Low-rank products summed per weight. Defaults to 2.
        act_layer (type[nn.Module]): Activation between the two layers. Defaults to ``nn.GELU``.
        hidden_dims (int, optional): Fixed bottleneck width; overrides ``hidden_ratio`` (LoRand's
            Swin-L setting, see docs/methods/lorand.md). Defaults to None.
        channel_dim (int): Dimension of ``d`` in the input: -1 for tokens, 1 for feature maps
            ``(B, d, H, W)``. Defaults to -1.

    Shapes:
        ``(..., d)`` -> ``(..., d)`` (``(B, d, H, W)`` -> ``(B, d, H, W)`` with ``channel_dim=1``).
    """

    def __init__(self,
                 embed_dims: int,
                 hidden_ratio: float = 0.5,
                 rank: int = 8,
                 num_branches: int = 2,
                 act_layer: type = nn.GELU,
                 hidden_dims: Optional[int] = None,
                 channel_dim: int = -1):
        super().__init__()
        self.channel_dim = channel_dim
        hidden = int(embed_dims * hidden_ratio) if hidden_dims is None else int(hidden_dims)
        if hidden <= 0:
            raise ValueError(f'DualLowRankAdapter: hidden width (embed_dims {embed_dims} x '
                             f'hidden_ratio {hidden_ratio}, or hidden_dims {hidden_dims}) must be '
                             'at least 1')
        self.down = DualLowRankLinear(embed_dims, hidden, rank, num_branches)
        self.act = act_layer()
        self.up = DualLowRankLinear(hidden, embed_dims, rank, num_branches, zero_init=True)

    def reset_parameters(self) -> None:
        """Re-draw both layers (``up`` zero again)."""
        self.down.reset_parameters()
        self.up.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim == -1:
            return self.up(self.act(self.down(x)))
        x = x.movedim(self.channel_dim, -1)
        return self.up(self.act(self.down(x))).movedim(-1, self.channel_dim)
