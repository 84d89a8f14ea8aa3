"""M2IST: multi-modal interactive side-tuning, as a tuning method of the M2IST grounder.

Liu et al., "M2IST: Multi-Modal Interactive Side-Tuning for Efficient Referring Expression
Comprehension", arXiv 2407.01131 (IEEE TCSVT 2025), Fig. 1c and Fig. 2; docs/m2ist.md::

    images, pixel mask ─ vision encoder (frozen, eval, no autograd) ─► x^v_N, z^v_0 ─┐
                               │ taps a_i, f_i (forward hooks)                        │
    phrases ─ language encoder (frozen, eval, no autograd) ─► x^l, E ────────────────┤
                               │ taps h_i, g_i of the paired BERT layers only         │
                               ▼                                                      ▼
    M3ISA_i (IEA + VEA + LEA), i = 1..N ──► visual = x^v_N + z^v_0 + sum_i (s^v_i + e^v_i)
                                            text   = x^l   + E     + sum_i (s^l_i + e^l_i)

Gradients never enter the encoders: they reach only the M3ISAs (through the frozen BERT
LayerNorms the side network calls) and, outside the method, the neck and the head. Backward keeps
only the taps: each M3ISA runs inside ``torch.utils.checkpoint`` (non-reentrant), so its
bottleneck activations, LayerNorm inputs and concatenations are recomputed from its four taps.
"""
from typing import Optional, Tuple

import torch
from torch.utils.checkpoint import checkpoint

from ..tuners.methods.base import TuningMethod, check_option
from ..tuners.registry import TUNING_METHODS
from ..tuners.taps import TapRecorder
from .encoders import GroundingEncoders, GroundingInputs
from .m3isa import M3ISA

__all__ = ['M2IST']


@TUNING_METHODS.register_module()
class M2IST(TuningMethod):
    """M2IST side-tuning: one :class:`~mmsidetune.grounding.M3ISA` per (DETR layer, paired BERT
    layer) reading the frozen encoders' taps, and their fixed, unweighted mixture.

    Applies to the M2IST grounder's encoders (:class:`~mmsidetune.grounding.GroundingEncoders`)
    only: it reads a vision and a language encoder at once, so it is not offered for a single
    backbone (``for_backbones = False``; :meth:`applicable` gives the reason for any other
    family). Its layers are held as ``side_network`` (state-dict keys
    ``side_network.<i>.iea|vea|lea.*``). With dv=256, dl=768, ``bottleneck=128`` and 6 pairs:
    2,975,232 parameters.

    Args:
        bottleneck (int): b, the width inside IEA, VEA and LEA. Default 128.
        scale (float): VEA / LEA output scale. Default 0.1.

    Shapes:
        ``forward(family, GroundingInputs)`` -> ``(vision, language)``: the encoders' output
        dicts with ``vision['feats']`` (B, N, dv) and ``language['hidden']`` (B, L, dl) replaced
        by the mixtures.

    Raises:
        ValueError: for a non-positive ``bottleneck``; when attached: for a family other than the
            grounder's, or a text width not above the visual width (IEA).
    """

    name = 'm2ist'
    layers_name = 'side_network'
    trains_output_norms = False
    #: Not a method for mmdet/mmseg backbones (read by the tuner core's ``BackboneTuning``).
    for_backbones = False

    def __init__(self, bottleneck: int = 128, scale: float = 0.1):
        super().__init__()
        check_option('M2IST', 'bottleneck', bottleneck, integer=True)
        check_option('M2IST', 'scale', scale)
        self.bottleneck, self.scale = bottleneck, float(scale)
        self.__dict__['_recorder'] = TapRecorder()  # not a child: this list holds M3ISAs only

    @classmethod
    def applicable(cls, family_cls) -> Optional[str]:
        if getattr(family_cls, 'name', None) == GroundingEncoders.name:
            return None
        return ('M2IST reads the taps of a vision and a language encoder at once; it applies to '
                'the M2IST grounder (M2ISTGrounder, docs/m2ist.md), not to a single backbone')

    def attach(self, family: GroundingEncoders) -> None:
        super().attach(family)
        self.extend(M3ISA(family.vision_dims, family.text_dims, self.bottleneck, self.scale)
                    for _ in range(family.num_pairs))
        for key, (module, pick) in family.side_taps().items():
            self.keep(self._recorder.add(module, key, pick))
        self._norms = [(family.attention_layernorm(i), family.output_layernorm(i))
                       for i in range(family.num_pairs)]

    @property
    def recorder(self) -> TapRecorder:
        """The tap recorder (holds the taps only while the encoders run)."""
        return self._recorder

    def forward(self, family: GroundingEncoders, x: GroundingInputs) -> Tuple[dict, dict]:
        """Run the frozen encoders without autograd, then the M3ISAs on their taps."""
        with torch.no_grad(), self._recorder.record() as store:
            vision, language = family.upstream_forward(x)
            taps = dict(store)
        for prefix in 'afhg':  # a clear error if a hooked module did not run
            self._recorder.taps(taps, prefix, len(self))
        if 'E' not in taps:
            raise RuntimeError('tap E (BERT embedding output) was not recorded: the hooked '
                               'module did not run (changed encoder structure?)')
        visual = vision['feats'] + vision['z0']
        text = language['hidden'] + taps.pop('E')
        recompute = torch.is_grad_enabled()
        for i, m3isa in enumerate(self):
            args = (taps.pop(f'a{i}'), taps.pop(f'f{i}'), taps.pop(f'h{i}'), taps.pop(f'g{i}'),
                    *self._norms[i])
            if recompute:  # keep only the four taps for backward
                v, t = checkpoint(m3isa, *args, use_reentrant=False)
            else:
                v, t = m3isa(*args)
            del args
            visual = visual + v
            text = text + t
        return dict(vision, feats=visual), dict(language, hidden=text)
