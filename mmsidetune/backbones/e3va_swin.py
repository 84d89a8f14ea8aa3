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
backward stores none of its attention maps or MLP activations. What backward keeps (docs/e3va.md,
"Memory options"):

* per adapter, only its input tap (``a_l`` or ``m_l``, ``d`` values per token): the d/2-wide
  bottleneck is recomputed from it (:func:`~mmsidetune.adapters.lean_dual_lowrank_adapter`);
  ``tap_dtype`` keeps the taps in a smaller dtype;
* per stage end, the highway state ``h`` once (output norm and highway PatchMerging are
  recomputed from it with ``torch.utils.checkpoint``);
* with ``recompute_trunk=True``, only each stage's inputs: backward re-runs the frozen stage
  without autograd to regenerate its taps;
* with ``trunk_dtype='bfloat16'``, the frozen weights are held in bfloat16 and the trunk runs
  under ``torch.autocast``; highway, output norms, neck and heads stay float32.

The trunk's branch outputs are read before their residual adds (no subtraction), and the highway
is carried as its own tensor ``h`` (``'full'``) with the trunk's addition order, so at step 0 (every
``W_up`` has a zero factor) the outputs are *bitwise* the frozen trunk's.
"""
from contextlib import nullcontext
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import ModuleList
from torch.utils.checkpoint import checkpoint

from ..adapters import DualLowRankAdapter, lean_dual_lowrank_adapter
from .tuned_swin import TunedSwinTransformer, register_tuned_swin, register_tuning_variant

__all__ = ['E3VASwinTransformer', 'E3VABlockAdapters', 'swin_block_branches']

#: ``tap_dtype`` / ``trunk_dtype`` names -> torch dtypes.
DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


def _dtype(name: Optional[str], option: str, allow_none: bool) -> Optional[torch.dtype]:
    if name is None and allow_none:
        return None
    if name not in DTYPES:
        raise ValueError(f'E3VASwinTransformer: {option} must be one of {sorted(DTYPES)}'
                         f"{' or None' if allow_none else ''}, got {name!r}")
    return DTYPES[name]


def swin_block_branches(block: nn.Module, x: torch.Tensor,
                        hw_shape: Tuple[int, int]) -> Tuple[torch.Tensor, ...]:
    """Run one mmdet ``SwinBlock`` (eval mode) and return its two branch outputs and its output.

    ``a = attn(norm1(x))``, ``x_mid = x + a``, ``m = ffn.layers(norm2(x_mid))`` read *before*
    the FFN's identity add, ``x_next = x_mid + m``: the same operations in the same order as
    ``block(x, hw_shape)``, so ``x_next`` is bitwise the block's output (tested).

    Shapes: ``x (B, N, d)`` -> ``a, m, x_next (B, N, d)``.

    Raises:
        TypeError: if the block's FFN is not mmcv's ``FFN`` with ``add_identity=True``.
    """
    ffn = block.ffn
    if not (getattr(ffn, 'add_identity', False) and hasattr(ffn, 'gamma2')):
        raise TypeError('swin_block_branches expects mmcv FFN(add_identity=True) in each Swin '
                        f'block, got {type(ffn).__name__}')
    a = block.attn(block.norm1(x), hw_shape)
    x_mid = x + a
    m = ffn.dropout_layer(ffn.gamma2(ffn.layers(block.norm2(x_mid))))
    return a, m, x_mid + m


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

    def forward(self, a: torch.Tensor, m: torch.Tensor, save_dtype: Optional[torch.dtype] = None,
                lean: bool = True) -> torch.Tensor:
        """``A_attn(a) + A_mlp(m)``; ``lean`` keeps only ``a`` and ``m`` for backward (in
        ``save_dtype`` when given), ``lean=False`` is the plain module composition (the
        reference the lean path is tested against; ``save_dtype`` ignored)."""
        if not lean:
            dtype = self.attn.up.P.dtype
            return self.attn(a.to(dtype)) + self.mlp(m.to(dtype))
        return (lean_dual_lowrank_adapter(self.attn, a, save_dtype) +
                lean_dual_lowrank_adapter(self.mlp, m, save_dtype))


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
        tap_dtype (str, optional): dtype the adapters keep their input taps in for backward
            (``'bfloat16'``, ``'float16'``, ``'float32'``); None (default) keeps them as the
            trunk made them. A rounded tap changes only the gradient of each ``W_down``'s ``Q``
            factor (docs/e3va.md, "Memory options", for the measured error).
        recompute_trunk (bool | sequence of int): Keep only each stage's inputs for backward;
            backward re-runs the frozen stage without autograd (``torch.utils.checkpoint``) to
            regenerate its taps. Same gradients, about one more trunk forward of time. True: all
            stages; a sequence: those stages only (e.g. ``(0, 1)``: the high-resolution stages,
            most of the taps' bytes for a small share of the trunk's time); ``'input'``: keep
            only the backbone's input image, backward re-runs the whole forward once (its
            stages again with recomputed taps, so the stage inputs and one stage's taps are
            live only during the backbone's backward). Defaults to False.
        trunk_dtype (str): ``'float32'`` (default), ``'bfloat16'`` or ``'float16'``: the frozen
            trunk's weights are held in this dtype (so are they in ``state_dict()``) and the
            trunk runs under ``torch.autocast`` to it; ``'bfloat16'`` falls back to float16 on a
            CUDA device without bfloat16. Highway, output norms, neck and heads stay float32.
        **kwargs: the arguments of mmdet's ``SwinTransformer``.

    Shapes:
        ``(B, 3, H, W)`` -> list of ``(B, C_i, H / s_i, W / s_i)`` for ``i`` in ``out_indices``
        (float32).

    Raises:
        ValueError: for an unknown ``highway`` mode, ``tap_dtype`` or ``trunk_dtype``, a bad
            ``recompute_trunk``, or ``frozen_stages != -1``; for
            ``out_indices`` that leave adapters without a path to an output (their tensors
            would be trainable but never get a gradient, which DDP with
            ``find_unused_parameters=False`` refuses): with ``highway='full'`` the last stage
            in ``out_indices`` must be the last stage, with ``'residual'`` every stage must be
            in ``out_indices``; for ``with_cp=True``: E3VA runs the trunk without autograd, so
            there is nothing for activation checkpointing to save (mmdet's ``with_cp`` wraps
            the whole Swin block, which E3VA's forward does not call).
    """

    HIGHWAY_MODES = ('full', 'residual')
    #: ``forward`` uses the plain adapter modules instead of the lean function (tests' reference).
    _plain_adapters = False

    def __init__(self,
                 adapter_hidden_ratio: float = 0.5,
                 adapter_rank: int = 8,
                 adapter_branches: int = 2,
                 highway: str = 'full',
                 tap_dtype: Optional[str] = None,
                 recompute_trunk: Union[bool, str, Sequence[int]] = False,
                 trunk_dtype: str = 'float32',
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
        self.tap_dtype = _dtype(tap_dtype, 'tap_dtype', allow_none=True)
        self.recompute_trunk = recompute_trunk
        self.trunk_dtype = _dtype(trunk_dtype, 'trunk_dtype', allow_none=False)
        self._adapter_args = dict(hidden_ratio=adapter_hidden_ratio, rank=adapter_rank,
                                  num_branches=adapter_branches)
        super().__init__(**kwargs)
        self._recompute_input = recompute_trunk == 'input'
        if self._recompute_input:
            self._recompute = set(range(len(self.stages)))
        elif isinstance(recompute_trunk, bool):
            self._recompute = set(range(len(self.stages))) if recompute_trunk else set()
        else:
            self._recompute = set(recompute_trunk) if isinstance(recompute_trunk,
                                                                 (list, tuple)) else {None}
            if not all(isinstance(i, int) and 0 <= i < len(self.stages) for i in self._recompute):
                raise ValueError("E3VASwinTransformer: recompute_trunk must be a bool, 'input' or "
                                 f'stage indices in [0, {len(self.stages)}), got '
                                 f'{recompute_trunk!r}')
        self._cast_trunk(self.trunk_dtype)

    def build_tuning_modules(self) -> None:
        self.highway = ModuleList()
        for i, stage in enumerate(self.stages):
            self.highway.append(ModuleList(
                E3VABlockAdapters(self.num_features[i], **self._adapter_args)
                for _ in stage.blocks))

    def trainable_modules(self) -> List[nn.Module]:
        return [self.highway] + self.out_norms()

    # ----------------------------------------------------------------- trunk dtype
    def _trunk_tensors(self):
        for module in self.trunk_modules():
            yield from module.parameters()
            yield from module.buffers()
        if self.use_abs_pos_embed:
            yield self.absolute_pos_embed

    def _cast_trunk(self, dtype: torch.dtype) -> None:
        """Hold every floating trunk parameter and buffer in ``dtype`` (in place)."""
        for t in self._trunk_tensors():
            if t.is_floating_point() and t.dtype != dtype:
                t.data = t.data.to(dtype)

    def init_weights(self) -> None:
        """As :meth:`TunedSwinTransformer.init_weights` (random init or ``Pretrained``), done in
        float32 and then cast to ``trunk_dtype``."""
        self._cast_trunk(torch.float32)
        super().init_weights()
        self._cast_trunk(self.trunk_dtype)

    def _trunk_context(self, device: torch.device):
        """``torch.autocast`` to the trunk dtype (nothing for float32)."""
        if self.trunk_dtype == torch.float32:
            return nullcontext()
        if (device.type == 'cuda' and self.trunk_dtype == torch.bfloat16
                and not torch.cuda.is_bf16_supported()):
            print_log('E3VASwinTransformer: this GPU has no bfloat16; the trunk runs in float16',
                      logger='current')
            self.trunk_dtype = torch.float16
            self._cast_trunk(torch.float16)
        return torch.autocast(device.type, dtype=self.trunk_dtype)

    def _highway_downsample(self, down: nn.Module, h: torch.Tensor, hw_shape):
        """The stage's frozen PatchMerging applied to the highway ``h`` in ``h``'s dtype (with
        copies of its weights in that dtype when the trunk is held in a smaller one)."""
        if all(p.dtype == h.dtype for p in down.parameters()):
            return down(h, hw_shape)
        params = {n: p.to(h.dtype) for n, p in down.named_parameters()}
        return torch.func.functional_call(down, params, (h, hw_shape))

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if self._recompute_input and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        with torch.no_grad(), self._trunk_context(x.device):
            x, hw_shape = self.patch_embed(x)
            if self.use_abs_pos_embed:
                x = x + self.absolute_pos_embed
            x = self.drop_after_pos(x)
        h = None  # the 'full' highway state (float32), from x inside stage 0
        outs = []
        for i in range(len(self.stages)):
            if i in self._recompute and torch.is_grad_enabled():
                out, x, h, hw_shape = checkpoint(self._stage_forward, i, x, h, hw_shape,
                                                 use_reentrant=False)
            else:
                out, x, h, hw_shape = self._stage_forward(i, x, h, hw_shape)
            if out is not None:
                outs.append(out)
        return outs

    def _stage_forward(self, i: int, x: torch.Tensor, h: Optional[torch.Tensor], hw_shape):
        """Stage ``i``: trunk blocks (no autograd) + highway, output norm, PatchMerging.

        Returns ``(out_i or None, x, h, hw_shape)`` for the next stage; ``h`` is None in
        ``'residual'`` mode. ``h=None`` in ``'full'`` mode starts the highway at ``x``.
        """
        stage = self.stages[i]
        full = self.highway_mode == 'full'
        dtype = next((p.dtype for p in self.highway.parameters()), torch.float32)
        if full and h is None:
            h = x.to(dtype)
        with_adapters = full or i in self.out_indices
        context = self._trunk_context(x.device)
        delta = None  # 'residual': the highway of this stage
        for j, block in enumerate(stage.blocks):
            with torch.no_grad(), context:
                a, m, x_next = swin_block_branches(block, x, hw_shape)
            if with_adapters:
                update = self.highway[i][j](a, m, save_dtype=self.tap_dtype,
                                            lean=not self._plain_adapters)
                if full:  # the trunk's addition order: bitwise equal to it while update == 0
                    h = ((h + a) + m) + update
                else:
                    delta = update if delta is None else delta + update
            x = x_next
        if not full:
            h_stage = x.to(dtype) if delta is None else x.to(dtype) + delta
        else:
            h_stage = h
        out = None
        down = stage.downsample
        if full and down is not None:
            if h.requires_grad and i not in self._recompute:
                # keep h once: norm and highway PatchMerging are recomputed from it in backward
                out, h = checkpoint(self._stage_end, i, h, hw_shape, use_reentrant=False)
            else:
                out, h = self._stage_end(i, h, hw_shape)
        elif i in self.out_indices:
            out = getattr(self, f'norm{i}')(h_stage)
        if out is not None:
            out = out.view(-1, *hw_shape, self.num_features[i]).permute(0, 3, 1, 2).contiguous()
        if down is not None:
            with torch.no_grad(), context:
                x, hw_shape = down(x, hw_shape)
        return out, x, h, hw_shape

    def _stage_end(self, i: int, h: torch.Tensor, hw_shape):
        """``(norm_i(h) or None, PatchMerging_i(h))`` on the highway ('full' mode)."""
        out = getattr(self, f'norm{i}')(h) if i in self.out_indices else None
        h_down, _ = self._highway_downsample(self.stages[i].downsample, h, hw_shape)
        return out, h_down


# Bench rows for E3VA's memory options (docs/e3va.md, "Memory options"); 'e3va' is the defaults.
register_tuning_variant('e3va-exact', 'e3va', tap_dtype=None, recompute_trunk=False,
                        trunk_dtype='float32')
register_tuning_variant('e3va-bf16-taps', 'e3va', tap_dtype='bfloat16')
register_tuning_variant('e3va-recompute', 'e3va', recompute_trunk=True)
register_tuning_variant('e3va-recompute-early', 'e3va', recompute_trunk=(0, 1))
register_tuning_variant('e3va-bf16-trunk', 'e3va', trunk_dtype='bfloat16')
register_tuning_variant('e3va-recompute-input', 'e3va', recompute_trunk='input')
register_tuning_variant('e3va-lowmem', 'e3va', tap_dtype='bfloat16', recompute_trunk='input',
                        trunk_dtype='bfloat16')
