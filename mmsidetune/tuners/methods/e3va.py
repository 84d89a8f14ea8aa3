"""E3VA: a frozen trunk run without autograd and a trainable gradient highway beside it.

Li et al., "Parameter-efficient is not sufficient: Exploring Parameter, Memory, and Time
Efficient Adapter Tuning for Dense Predictions", arXiv 2306.09729 (ACM MM 2024), section 3.

::

    image ─stem─► x_0 ─► block_1 ─► x_1 ─► ... ─► x_L ──downsampling──► next stage
           (frozen, unmodified, no autograd) │ taps u_1 = (a_1, m_1 ...) (branch outputs)
                                             ▼
    highway  h_0 = x_0 ──► h_1 = step(h_0, u_1) + sum_b A_b(u_1,b) ─► ... ─► h_L
                                                                             │
                               out_s = stage_output_s(h_L) (trainable norm) ◄┤
                               h <- transition_s(h_L) (frozen downsampling) ◄─┘

``step`` is the block's own residual sum with ``h`` in place of its input (docs/e3va.md, per
family): ``(h + a) + m`` for Swin and ViT blocks, ``relu(f + shortcut(h))`` for ResNet blocks.
Only the adapters ``A`` (and the output norms) train. The trunk runs under ``torch.no_grad()``
and its branch outputs are read by forward hooks on the unmodified blocks, so backward stores
none of the trunk's attention maps or MLP activations. What backward keeps (docs/e3va.md,
"Memory options"):

* per adapter, only its input tap (``d`` values per token): the bottleneck is recomputed from it
  (:func:`~mmsidetune.tuners.layers.lean_dual_lowrank_adapter`); ``tap_dtype`` keeps the taps in
  a smaller dtype;
* per stage end with a downsampling, the highway state ``h`` once (output norm and highway
  downsampling are recomputed from it with ``torch.utils.checkpoint``);
* with ``recompute_trunk``, only stage inputs: backward re-runs the frozen stage without
  autograd to regenerate its taps;
* with ``trunk_dtype='bfloat16'``, the frozen weights are held in bfloat16 and the trunk runs
  under ``torch.autocast``; highway, output norms, neck and heads stay float32.

At step 0 (every ``W_up`` has a zero factor) the outputs are *bitwise* the frozen trunk's.
"""
from contextlib import nullcontext
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.model import ModuleDict
from torch.utils.checkpoint import checkpoint

from ..families import upstream_class
from ..layers import DualLowRankAdapter, lean_dual_lowrank_adapter
from ..registry import TUNING_METHODS, register_method_variant
from ..taps import TapRecorder
from .base import TuningMethod, check_option

__all__ = ['E3VA', 'DTYPES']

#: ``tap_dtype`` / ``trunk_dtype`` names -> torch dtypes.
DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


def _dtype(name: Optional[str], option: str, allow_none: bool) -> Optional[torch.dtype]:
    if name is None and allow_none:
        return None
    if name not in DTYPES:
        raise ValueError(f'E3VA: {option} must be one of {sorted(DTYPES)}'
                         f"{' or None' if allow_none else ''}, got {name!r}")
    return DTYPES[name]


def _clone(output):
    return (output[0] if isinstance(output, tuple) else output).clone()


@TUNING_METHODS.register_module()
class E3VA(TuningMethod):
    """E3VA's gradient highway on any supported backbone family (arXiv 2306.09729, section 3).

    One :class:`~mmsidetune.tuners.layers.DualLowRankAdapter` per branch of every block
    (``d -> d * hidden_ratio -> d``, rank ``rank``, ``num_branches`` products per weight,
    ``W_up``'s ``P`` zero at init). Swin-B with the defaults: 1,203,456 adapter parameters plus
    output norms 3,840 = 1,207,296 (1.38 % of the backbone; paper Table 1: 1.20 M).

    Args:
        hidden_ratio (float): adapter bottleneck width / block width. Defaults to 0.5.
        rank (int): rank of every low-rank factor. Defaults to 8.
        num_branches (int): low-rank products summed per adapter weight. Defaults to 2.
        highway (str): ``'full'`` (default): the highway carries the whole feature stream
            and crosses each downsampling through the frozen layer. ``'residual'`` (the
            alternative reading, not confirmed by the paper): the highway restarts at zero in
            every stage and ``out_s = stage_output_s(x_s + h_s)``.
        tap_dtype (str, optional): dtype the adapters keep their input taps in for backward
            (``'bfloat16'``, ``'float16'``, ``'float32'``); None keeps them as the trunk made
            them. Changes only the gradient of each ``W_down``'s ``Q`` factor.
        recompute_trunk (bool | sequence of int | str): keep only stage inputs for backward and
            re-run the frozen stage there. True: every stage; a sequence: those stages;
            ``'input'``: keep only the backbone's input, backward re-runs the whole forward
            once. Defaults to False.
        trunk_dtype (str): ``'float32'`` (default), ``'bfloat16'`` or ``'float16'``: the frozen
            trunk's weights are held in this dtype and the trunk runs under ``torch.autocast``
            to it (``'bfloat16'`` becomes float16 at construction when a CUDA device without
            bfloat16 is present).

    Raises:
        ValueError: at construction, for an unknown ``highway``, ``tap_dtype`` or
            ``trunk_dtype`` or a bad ``hidden_ratio``/``rank``/``num_branches``; when attached
            (it needs the number of stages): for a bad ``recompute_trunk``; for outputs that
            leave adapters without a path to an output (``'full'``: the last stage must have
            an output; ``'residual'``: every stage must), which DDP with
            ``find_unused_parameters=False`` refuses; for blocks with ``with_cp=True`` (the
            trunk runs without autograd: nothing to checkpoint).
    """

    name = 'e3va'
    layers_name = 'highway'
    HIGHWAY_MODES = ('full', 'residual')

    def __init__(self,
                 hidden_ratio: float = 0.5,
                 rank: int = 8,
                 num_branches: int = 2,
                 highway: str = 'full',
                 tap_dtype: Optional[str] = None,
                 recompute_trunk: Union[bool, str, Sequence[int]] = False,
                 trunk_dtype: str = 'float32'):
        super().__init__()
        if highway not in self.HIGHWAY_MODES:
            raise ValueError(f'E3VA: highway must be one of {self.HIGHWAY_MODES}, '
                             f'got {highway!r}')
        check_option('E3VA', 'hidden_ratio', hidden_ratio)
        check_option('E3VA', 'rank', rank, integer=True)
        check_option('E3VA', 'num_branches', num_branches, integer=True)
        self.adapter_args = dict(hidden_ratio=hidden_ratio, rank=rank, num_branches=num_branches)
        self.highway_mode = highway
        self.tap_dtype = _dtype(tap_dtype, 'tap_dtype', allow_none=True)
        self.trunk_dtype = _dtype(trunk_dtype, 'trunk_dtype', allow_none=False)
        if (self.trunk_dtype == torch.bfloat16 and torch.cuda.is_available()
                and not torch.cuda.is_bf16_supported()):
            print_log('E3VA: this GPU has no bfloat16; the trunk is held in float16',
                      logger='current')
            self.trunk_dtype = torch.float16
        self.recompute_trunk = recompute_trunk
        self.__dict__['_recorder'] = TapRecorder()  # not a child: this list holds stages only

    def attach(self, family) -> None:
        super().attach(family)
        num_stages, outs = len(family.stages), family.out_stages()
        if self.highway_mode == 'full':
            unused = list(range(outs[-1] + 1, num_stages)) if outs else list(range(num_stages))
            fix = f'the last stage ({num_stages - 1}) must have an output'
        else:
            unused = [i for i in range(num_stages) if i not in outs]
            fix = "with highway='residual' every stage must have an output (or highway='full')"
        if unused:
            raise ValueError(
                f'E3VA: with highway={self.highway_mode!r} and output stages {tuple(outs)} of '
                f'{upstream_class(family.module).__name__} the adapters of stages {unused} reach '
                'no '
                f'output: trainable tensors that never get a gradient; {fix} (out_indices)')
        if any(getattr(b.module, 'with_cp', False) for b in family.blocks()):
            raise ValueError(
                'E3VA: with_cp=True has no effect here: the frozen trunk runs under '
                'torch.no_grad(), so it stores no activations for backward and gradient '
                'checkpointing has nothing to save; remove with_cp from the backbone config')
        rt = self.recompute_trunk
        self._recompute_input = rt == 'input'
        if self._recompute_input or rt is True:
            self._recompute = set(range(num_stages))
        elif rt is False:
            self._recompute = set()
        else:
            self._recompute = set(rt) if isinstance(rt, (list, tuple)) else {None}
            if not all(isinstance(i, int) and 0 <= i < num_stages for i in self._recompute):
                raise ValueError("E3VA: recompute_trunk must be a bool, 'input' or stage indices "
                                 f'in [0, {num_stages}), got {rt!r}')
        self._outs = set(outs)

        def make(block):
            layers = ModuleDict({
                name: DualLowRankAdapter(block.width, channel_dim=block.channel_dim,
                                         **self.adapter_args)
                for name in block.branches})
            return layers

        self.per_block(family, make)
        for i, stage in enumerate(family.stages):
            for j, block in enumerate(stage):
                for name, module in block.branches.items():
                    self.keep(self._recorder.add(module, f'{i}.{j}.{name}',
                                       **(dict(pick=_clone) if block.clone_taps else {})))

    # ----------------------------------------------------------------- trunk dtype
    def _trunk_context(self, device: torch.device):
        """``torch.autocast`` to the trunk dtype (nothing for float32). The trunk's tensors are
        held in that dtype by the core (decided at construction, never changed in forward)."""
        if self.trunk_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.trunk_dtype)

    # ----------------------------------------------------------------- forward
    def forward(self, family, x: torch.Tensor):
        """Image ``(B, 3, H, W)`` -> the family's outputs (float32), from the highway."""
        if self._recompute_input and torch.is_grad_enabled():
            return checkpoint(self._forward, family, x, use_reentrant=False)
        return self._forward(family, x)

    def _forward(self, family, x: torch.Tensor):
        with torch.no_grad(), self._trunk_context(x.device):
            x, ctx = family.stem(x)
        h = None  # the 'full' highway state (float32), from x inside stage 0
        outs = []
        for i in range(len(family.stages)):
            if i in self._recompute and torch.is_grad_enabled():
                out, x, ctx, h = checkpoint(self._stage_forward, family, i, x, ctx, h,
                                            use_reentrant=False)
            else:
                out, x, ctx, h = self._stage_forward(family, i, x, ctx, h)
            if out is not None:
                outs.append(out)
        return family.output_format(outs)

    def _adapt(self, adapter: DualLowRankAdapter, u: torch.Tensor, channel_dim: int):
        if channel_dim == -1:
            return lean_dual_lowrank_adapter(adapter, u, self.tap_dtype)
        return lean_dual_lowrank_adapter(adapter, u.movedim(channel_dim, -1),
                                         self.tap_dtype).movedim(-1, channel_dim)

    def _stage_forward(self, family, i: int, x: torch.Tensor, ctx, h: Optional[torch.Tensor]):
        """Stage ``i``: the unmodified trunk stage (no autograd, taps recorded), then the
        highway through its blocks and the stage end. Returns ``(out_i or None, next input,
        its context, h)``; ``h`` is None in ``'residual'`` mode."""
        full = self.highway_mode == 'full'
        dtype = next(self.parameters()).dtype
        if full and h is None:
            h = x.to(dtype)
        with_adapters = full or i in self._outs
        with self._recorder.record(enabled=with_adapters) as store, torch.no_grad(), \
                self._trunk_context(x.device):
            x_next, ctx_next, x_out, ctx_out = family.run_stage(i, x, ctx)
            taps: Dict[str, torch.Tensor] = dict(store)
        del x
        delta = None  # 'residual': this stage's highway
        for j, block in enumerate(family.stages[i] if with_adapters else []):
            try:
                u = {name: taps.pop(f'{i}.{j}.{name}') for name in block.branches}
            except KeyError as e:
                raise RuntimeError(
                    f'E3VA: tap {e} was not recorded: the hooked module of block {j} of stage '
                    f'{i} did not run its hooks (was it replaced after the model was built, '
                    'outside TunedBackbone.forward?)') from None
            update = None
            for name, adapter in self[i][j].items():
                a = self._adapt(adapter, u[name], block.channel_dim)
                update = a if update is None else update + a
            if full:
                h = family.highway_step(block, h, u, update)
            else:
                delta = update if delta is None else delta + update
            del u
        out = None
        if full:
            if h.requires_grad and i not in self._recompute and family.has_transition(i):
                # keep h once: output norm and highway downsampling are recomputed in backward
                out, h = checkpoint(self._stage_end, family, i, h, ctx_out, use_reentrant=False)
            else:
                out, h = self._stage_end(family, i, h, ctx_out)
        elif i in self._outs:
            x_out = x_out.to(dtype)
            out = family.stage_output(i, x_out if delta is None else x_out + delta, ctx_out)
        return out, x_next, ctx_next, h

    @staticmethod
    def _stage_end(family, i: int, h: torch.Tensor, ctx):
        """``(stage_output_i(h) or None, h across stage i's downsampling)``."""
        out = family.stage_output(i, h, ctx)
        h_next = family.transition(i, h, ctx)
        return out, h if h_next is None else h_next


# Bench rows for E3VA's memory options (docs/e3va.md, "Memory options"); 'e3va' is the defaults.
register_method_variant('e3va-exact', 'e3va', tap_dtype=None, recompute_trunk=False,
                        trunk_dtype='float32')
register_method_variant('e3va-bf16-taps', 'e3va', tap_dtype='bfloat16')
register_method_variant('e3va-recompute', 'e3va', recompute_trunk=True)
register_method_variant('e3va-recompute-early', 'e3va', recompute_trunk=(0, 1))
register_method_variant('e3va-bf16-trunk', 'e3va', trunk_dtype='bfloat16')
register_method_variant('e3va-recompute-input', 'e3va', recompute_trunk='input')
register_method_variant('e3va-lowmem', 'e3va', tap_dtype='bfloat16', recompute_trunk='input',
                        trunk_dtype='bfloat16')
