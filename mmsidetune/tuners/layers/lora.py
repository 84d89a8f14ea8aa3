"""LoRA: a trainable low-rank update ``(alpha / r) * B A x`` added to a frozen linear layer.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022
(docs/methods/lora.md). An ``in -> out`` update of rank ``r`` costs ``r * (in + out)`` parameters
(no bias).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['LoRAUpdate']


class LoRAUpdate(nn.Module):
    """The update branch of a LoRA layer: ``(alpha / r) * x A^T B^T``.

    Added to the output of the frozen ``nn.Linear`` it adapts (``W x + b + (alpha / r) B A x``).
    ``B`` starts at zero, so the adapted layer equals the frozen one at initialisation.

    Args:
        in_features (int): Input width of the adapted layer.
        out_features (int): Output width of the adapted layer.
        rank (int): Rank ``r``. Defaults to 8.
        alpha (float, optional): Scale numerator; ``None`` means ``alpha = r`` (scale 1).

    Shapes:
        ``(..., in_features)`` -> ``(..., out_features)``.

    Raises:
        ValueError: if a width or the rank is not positive.
    """

    def __init__(self, in_features: int, out_features: int, rank: int = 8, alpha=None):
        super().__init__()
        for name, value in (('in_features', in_features), ('out_features', out_features),
                            ('rank', rank)):
            if int(value) <= 0:
                raise ValueError(f'LoRAUpdate: {name} must be positive, got {value}')
        self.rank = rank
        self.scaling = (rank if alpha is None else alpha) / rank
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.empty(out_features, rank))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform ``A`` (as the reference implementation), zero ``B``."""
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        nn.init.zeros_(self.B)

    def delta_weight(self) -> torch.Tensor:
        """The update as a weight, ``(alpha / r) B A``: ``(out_features, in_features)``."""
        delta = self.B @ self.A
        return delta if self.scaling == 1.0 else delta * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(F.linear(x, self.A), self.B)
        return out if self.scaling == 1.0 else out * self.scaling

    def extra_repr(self) -> str:
        return (f'in_features={self.A.shape[1]}, out_features={self.B.shape[0]}, '
                f'rank={self.rank}, scaling={self.scaling}')
