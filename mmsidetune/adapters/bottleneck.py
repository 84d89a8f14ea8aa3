"""Bottleneck adapter ``s * W_up act(W_down u + b_down) + b_up`` (Houlsby and AdaptFormer).

Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019 (serial adapter);
Chen et al., "AdaptFormer", NeurIPS 2022 (parallel, scaled, ReLU). SPEC.md section 1, baselines.
A ``d -> h -> d`` adapter costs ``2 * d * h + h + d`` parameters.
"""
import math

import torch
import torch.nn as nn

__all__ = ['BottleneckAdapter']


class BottleneckAdapter(nn.Module):
    """Down-project, activate, up-project, scale: ``s * up(act(down(u)))``.

    ``up`` (weight and bias) starts at zero, so the adapter outputs exactly zero until trained:
    inserted into a frozen network, the network's output is unchanged at initialisation.

    Args:
        embed_dims (int): Width ``d`` of input and output.
        hidden_dims (int): Bottleneck width ``h``. Defaults to 64.
        act_layer (type[nn.Module]): Activation. Defaults to ``nn.GELU``.
        scale (float): Output scale ``s`` (AdaptFormer's 0.1). Defaults to 1.0.

    Shapes:
        ``(..., d)`` -> ``(..., d)``.

    Raises:
        ValueError: if a width is not positive.
    """

    def __init__(self, embed_dims: int, hidden_dims: int = 64, act_layer: type = nn.GELU,
                 scale: float = 1.0):
        super().__init__()
        if embed_dims <= 0 or hidden_dims <= 0:
            raise ValueError(f'BottleneckAdapter: widths must be positive, got embed_dims='
                             f'{embed_dims}, hidden_dims={hidden_dims}')
        self.scale = scale
        self.down = nn.Linear(embed_dims, hidden_dims)
        self.act = act_layer()
        self.up = nn.Linear(hidden_dims, embed_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform ``down`` (as ``nn.Linear``), zero biases, zero ``up``."""
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.up(self.act(self.down(x)))
        return out if self.scale == 1.0 else out * self.scale

    def extra_repr(self) -> str:
        return f'scale={self.scale}'
