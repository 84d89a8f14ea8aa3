"""The bottleneck adapter ``s * W_up act(W_down norm(u) + b_down) + b_up`` of the Adapter and
AdaptFormer methods and of M2IST's VEA/LEA.

Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019 (serial adapter,
GELU); Chen et al., "AdaptFormer", NeurIPS 2022 (parallel, ReLU, scale 0.1); M2IST's VEA and LEA
(arXiv 2407.01131, section 3.2: a new LayerNorm first, ReLU, scale 0.1) and its plain
adapter-tuning baseline (ReLU). A ``d -> h -> d`` adapter costs ``2 * d * h + h + d``
parameters, plus ``2 * d`` with the LayerNorm. See docs/methods/README.md.
"""
import math

import torch
import torch.nn as nn

__all__ = ['BottleneckAdapter']


class BottleneckAdapter(nn.Module):
    """Optionally normalise, down-project, activate, up-project, scale: ``s * up(act(down(u)))``.

    With ``zero_init`` (the default) ``up`` (weight and bias) starts at zero, so the adapter
    outputs exactly zero until trained: attached to a frozen network (serially, ``y + A(y)``, or in
    parallel, ``y + A(x)``, see :mod:`.injection`), the network's output is unchanged at
    initialisation.

    Args:
        embed_dims (int): Width ``d`` of input and output.
        hidden_dims (int): Bottleneck width ``h``. Defaults to 64.
        act_layer (type[nn.Module]): Activation. Defaults to ``nn.GELU``.
        scale (float): Output scale ``s`` (AdaptFormer's and M2IST's 0.1). Defaults to 1.0.
        with_norm (bool): A new trainable ``nn.LayerNorm(d)`` on the input first (M2IST's VEA and
            LEA). Defaults to False.
        zero_init (bool): Zero ``up`` at initialisation. False keeps PyTorch's default
            ``nn.Linear`` init (M2IST's side adapters, whose outputs are not in the frozen
            stream). Defaults to True.
        channel_dim (int): Dimension of ``d`` in the input: -1 for tokens ``(B, N, d)``, 1 for
            feature maps ``(B, d, H, W)`` (ResNet). Defaults to -1.

    Shapes:
        ``(..., d)`` -> ``(..., d)`` (or ``(B, d, H, W)`` -> ``(B, d, H, W)`` with
        ``channel_dim=1``).

    Raises:
        ValueError: if a width is not positive.
    """

    def __init__(self, embed_dims: int, hidden_dims: int = 64, act_layer: type = nn.GELU,
                 scale: float = 1.0, with_norm: bool = False, zero_init: bool = True,
                 channel_dim: int = -1):
        super().__init__()
        if embed_dims <= 0 or hidden_dims <= 0:
            raise ValueError(f'BottleneckAdapter: widths must be positive, got embed_dims='
                             f'{embed_dims}, hidden_dims={hidden_dims}')
        self.scale = scale
        self.zero_init = zero_init
        self.channel_dim = channel_dim
        self.norm = nn.LayerNorm(embed_dims) if with_norm else None
        self.down = nn.Linear(embed_dims, hidden_dims)
        self.act = act_layer()
        self.up = nn.Linear(hidden_dims, embed_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform ``down`` (as ``nn.Linear``), zero ``down`` bias; zero ``up`` with
        ``zero_init``, else ``nn.Linear``'s default for both layers."""
        if self.norm is not None:
            self.norm.reset_parameters()
        if not self.zero_init:
            self.down.reset_parameters()
            self.up.reset_parameters()
            return
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim != -1:
            x = x.movedim(self.channel_dim, -1)
        if self.norm is not None:
            x = self.norm(x)
        out = self.up(self.act(self.down(x)))
        if self.scale != 1.0:
            out = out * self.scale
        return out if self.channel_dim == -1 else out.movedim(-1, self.channel_dim)

    def extra_repr(self) -> str:
        return f'scale={self.scale}, zero_init={self.zero_init}, channel_dim={self.channel_dim}'
