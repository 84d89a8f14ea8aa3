"""E3VA: parameter-, memory- and time-efficient visual adapter on a frozen Swin trunk.

Li et al., "Parameter-efficient is not sufficient: Exploring Parameter, Memory, and Time
Efficient Adapter Tuning for Dense Predictions", arXiv 2306.09729 (ACM MM 2024), section 3.

::

    image ──patch_embed──► x_0 ─► block_1 ─► x_1 ─► ... ─► x_L ──PatchMerging──► next stage
             (frozen, no autograd)   │ a_1, m_1 (attention / MLP branch outputs, detached)
                                     ▼
    highway  h_0 = x_0 ─────► h_1 = h_0 + a_1 + m_1 + A_attn(a_1) + A_mlp(m_1) ─► ... ─► h_L
                                                                                         │
                                           out_s = norm_s(h_L) (trainable) ◄─────────────┤
                                           h <- PatchMerging_s(h) (frozen weights) ◄──────┘

Only the adapters ``A`` and the output norms train. The trunk runs under ``torch.no_grad()``, so
backward stores none of its attention maps or MLP activations: only the adapters' inputs and
low-rank intermediates, the three highway PatchMerging inputs and the four norms' inputs.

Implementation note: the highway is kept as ``h = x + delta`` where ``delta`` (the only tensor
with autograd history) accumulates the adapter outputs. This is the same function and the same
gradient as the recurrence above, and makes the step-0 output *bitwise* equal to the frozen
trunk's (``delta`` is exactly zero because every ``W_up`` starts with a zero factor).
"""
from typing import List

import torch
import torch.nn as nn
from mmengine.model import ModuleList

from ..adapters import DualLowRankAdapter
from .tuned_swin import TunedSwinTransformer, register_tuned_swin

__all__ = ['E3VASwinTransformer', 'E3VABlockAdapters']


class E3VABlockAdapters(nn.Module):
    """The two E3VA adapters of one Swin block; they read the trunk in parallel.

    Args:
        embed_dims (int): Block width ``d``.
        hidden_ratio (float): Bottleneck width / ``d``. Defaults to 0.5 (``d -> d/2 -> d``).
        rank (int): Rank of every low-rank factor. Defaults to 8.
        num_branches (int): Low-rank products per weight. Defaults to 2.

    Shapes:
        ``a, m: (B, N, d)`` -> ``(B, N, d)`` (the sum ``A_attn(a) + A_mlp(m)``).
    """

    def __init__(self, embed_dims: int, hidden_ratio: float = 0.5, rank: int = 8,
                 num_branches: int = 2):
        super().__init__()
        self.attn = DualLowRankAdapter(embed_dims, hidden_ratio, rank, num_branches)
        self.mlp = DualLowRankAdapter(embed_dims, hidden_ratio, rank, num_branches)

    def forward(self, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return self.attn(a) + self.mlp(m)


@register_tuned_swin('e3va')
class E3VASwinTransformer(TunedSwinTransformer):
    """Swin Transformer tuned with E3VA's gradient highway (arXiv 2306.09729, section 3).

    Takes every argument of ``mmdet.models.backbones.SwinTransformer`` plus the ones below, so a
    Swin config switches to E3VA by changing ``type`` alone. The trunk is frozen in ``__init__``,
    kept in eval mode and run without autograd; ``frozen_stages`` must stay -1 and
    ``drop_path_rate`` has no effect (the trunk never runs in train mode).

    Args:
        adapter_hidden_ratio (float): Adapter bottleneck width / block width. Defaults to 0.5.
        adapter_rank (int): Rank of every low-rank factor. Defaults to 8.
        adapter_branches (int): Low-rank products summed per adapter weight. Defaults to 2.
        highway (str): ``'full'`` (default; SPEC's reading): the highway carries the whole
            feature stream and is passed through each stage's frozen PatchMerging.
            ``'residual'`` (the alternative reading, UNVERIFIED in the paper): the highway
            restarts at zero in every stage and ``out_s = norm_s(x_s + h_s)``; no PatchMerging
            on the highway.
        **kwargs: the arguments of mmdet's ``SwinTransformer``.

    Shapes:
        ``(B, 3, H, W)`` -> list of ``(B, C_i, H / s_i, W / s_i)`` for ``i`` in ``out_indices``.

    Raises:
        ValueError: for an unknown ``highway`` mode or ``frozen_stages != -1``; for
            ``out_indices`` that leave adapters without a path to an output (their tensors
            would be trainable but never get a gradient, which DDP with
            ``find_unused_parameters=False`` refuses): with ``highway='full'`` the last stage
            in ``out_indices`` must be the last stage, with ``'residual'`` every stage must be
            in ``out_indices``; for ``with_cp=True``: E3VA runs the trunk without autograd, so
            there is nothing for activation checkpointing to save (mmdet's ``with_cp`` wraps
            the whole Swin block, which E3VA's forward does not call).
    """

    HIGHWAY_MODES = ('full', 'residual')

    def __init__(self,
                 adapter_hidden_ratio: float = 0.5,
                 adapter_rank: int = 8,
                 adapter_branches: int = 2,
                 highway: str = 'full',
                 **kwargs):
        if highway not in self.HIGHWAY_MODES:
            raise ValueError(f"E3VASwinTransformer: highway must be one of {self.HIGHWAY_MODES}, "
                             f'got {highway!r}')
        if kwargs.get('with_cp', False):
            raise ValueError(
                'E3VASwinTransformer: with_cp=True has no effect here: the frozen trunk runs '
                'under torch.no_grad(), so it stores no activations for backward and gradient '
                'checkpointing has nothing to save (E3VA already keeps only the adapters\' '
                'inputs); remove with_cp')
        num_stages = len(kwargs.get('depths', (2, 2, 6, 2)))
        outs = sorted(i % num_stages for i in kwargs.get('out_indices', (0, 1, 2, 3)))
        if highway == 'full':
            unused = list(range(outs[-1] + 1, num_stages)) if outs else list(range(num_stages))
            fix = f'out_indices must include the last stage ({num_stages - 1})'
        else:
            unused = [i for i in range(num_stages) if i not in outs]
            fix = "with highway='residual' every stage must be in out_indices"
        if unused:
            alternative = " (or highway='full')" if highway == 'residual' else ''
            raise ValueError(
                f'E3VASwinTransformer: with highway={highway!r} and out_indices={tuple(outs)} '
                f'the adapters of stages {unused} reach no output: trainable tensors that never '
                f'get a gradient; {fix}{alternative}')
        self.highway_mode = highway
        self._adapter_args = dict(hidden_ratio=adapter_hidden_ratio, rank=adapter_rank,
                                  num_branches=adapter_branches)
        super().__init__(**kwargs)

    def build_tuning_modules(self) -> None:
        self.highway = ModuleList()
        for i, stage in enumerate(self.stages):
            self.highway.append(ModuleList(
                E3VABlockAdapters(self.num_features[i], **self._adapter_args)
                for _ in stage.blocks))

    def trainable_modules(self) -> List[nn.Module]:
        return [self.highway] + self.out_norms()

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        with torch.no_grad():
            x, hw_shape = self.patch_embed(x)
            if self.use_abs_pos_embed:
                x = x + self.absolute_pos_embed
            x = self.drop_after_pos(x)

        delta = None  # h - x: the part of the highway that carries gradient
        outs = []
        for i, stage in enumerate(self.stages):
            if self.highway_mode == 'residual':
                delta = None
            for block, adapters in zip(stage.blocks, self.highway[i]):
                with torch.no_grad():
                    a = block.attn(block.norm1(x), hw_shape)   # attention branch a_l
                    x_mid = x + a
                    x_next = block.ffn(block.norm2(x_mid), identity=x_mid)
                    m = x_next - x_mid                          # MLP branch m_l
                update = adapters(a, m)
                delta = update if delta is None else delta + update
                x = x_next
            h = x if delta is None else x + delta
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(h)
                outs.append(out.view(-1, *hw_shape, self.num_features[i])
                            .permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None:
                with torch.no_grad():
                    x_down, down_hw_shape = stage.downsample(x, hw_shape)
                if self.highway_mode == 'full' and delta is not None:
                    h_down, _ = stage.downsample(h, hw_shape)  # frozen weights, gradient to h
                    delta = h_down - x_down
                x, hw_shape = x_down, down_hw_shape
        return outs
