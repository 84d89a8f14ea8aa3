"""The grounder's two frozen encoders as the tuning methods see them (docs/m2ist.md).

:class:`GroundingEncoders` is the :class:`~mmsidetune.tuners.BackboneFamily` of the M2IST
grounder: the vision encoder (:class:`DETRVisionEncoder`) and the language encoder
(:class:`BertLanguageModel`) side by side, unmodified. It describes

* the blocks the tuning methods attach to (:class:`~mmsidetune.tuners.BlockSpec`), in two
  stages: ``stages[0]`` the DETR encoder layers, ``stages[1]`` the BERT layers paired with them
  (``text_layers``), each with the branches ``'attn'`` and ``'ffn'`` whose outputs are the
  sub-layer outputs before dropout and the residual add. The generic
  :class:`~mmsidetune.tuners.Adapter` puts its serial adapters there (the M2IST paper's
  adapter-tuning baseline, Fig. 1b);
* the taps the M3ISA side network reads (Fig. 2; docs/m2ist.md, "Structure"): per pair ``i``
  ``a_i`` (DETR self-attention output), ``f_i`` (DETR FFN output), ``h_i`` (BERT attention block
  output after its LayerNorm), ``g_i`` (BERT FFN output), plus ``E`` (the BERT embedding
  output), and the frozen BERT LayerNorms ``LN_att,i`` / ``LN_out,i`` the side network calls.

Only the paired BERT layers are described: nothing is hooked on the others. The family is not
registered with :func:`~mmsidetune.tuners.register_family`: it is no backbone of a
:class:`~mmsidetune.tuners.TunedBackbone`.
"""
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import torch
import torch.nn as nn

from ..tuners.families.base import BackboneFamily, BlockSpec

__all__ = ['GroundingEncoders', 'GroundingInputs']


class GroundingInputs(NamedTuple):
    """What the encoders read: ``images`` (B, 3, H, W), ``pixel_mask`` (B, H, W) bool with True
    = padding, ``texts`` (B phrases)."""
    images: torch.Tensor
    pixel_mask: torch.Tensor
    texts: Sequence[str]


class _EncoderPair(nn.Module):
    """Both encoders run on :class:`GroundingInputs` -> (vision dict, language dict).

    Held by the family only (not a sub-module of the grounder, which owns the encoders)."""

    def __init__(self, vision: nn.Module, language: nn.Module):
        super().__init__()
        self.vision = vision
        self.language = language

    def forward(self, x: GroundingInputs) -> Tuple[dict, dict]:
        return (self.vision(x.images, x.pixel_mask),
                self.language(x.texts, x.images.device))


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _batch_first(output):
    # mmcv's MultiheadAttention (batch_first) calls nn.MultiheadAttention sequence-first.
    return output[0].transpose(0, 1)


class GroundingEncoders(BackboneFamily):
    """The DETR vision encoder and the paired BERT layers of an M2IST grounder.

    Args:
        vision: a :class:`~mmsidetune.grounding.DETRVisionEncoder` (``embed_dims`` d_v,
            ``num_layers`` N, ``encoder.layers`` post-norm DETR layers).
        language: a :class:`~mmsidetune.grounding.BertLanguageModel` (``embed_dims`` d_l,
            ``bert`` a transformers ``BertModel``).
        text_layers: the BERT layer paired with each DETR layer (0-based, N of them).

    Attributes:
        module: both encoders as one callable, :class:`GroundingInputs` -> ``(vision,
            language)`` (the encoders' output dicts); what a method's ``forward`` runs through
            :meth:`upstream_forward`.
        stages: ``[DETR layers, paired BERT layers]``, :class:`~mmsidetune.tuners.BlockSpec`
            each (branches ``'attn'`` and ``'ffn'``, tokens ``(..., d)``).

    Raises:
        TypeError: for a DETR layer whose FFN does not end with Linear + Dropout or whose
            attention is not batch-first (an encoder structure the taps do not know).
        ValueError: for ``text_layers`` of another length than the DETR layers or out of range.
    """

    name = 'grounding'

    def __init__(self, vision: nn.Module, language: nn.Module, text_layers: Sequence[int]):
        self.vision, self.language = vision, language
        self.text_layers = list(text_layers)
        num_text = len(language.bert.encoder.layer)
        if (len(self.text_layers) != vision.num_layers
                or not all(isinstance(j, int) and 0 <= j < num_text for j in self.text_layers)):
            raise ValueError(f'text_layers must name {vision.num_layers} BERT layers in '
                             f'[0, {num_text}), one per DETR encoder layer, got '
                             f'{self.text_layers}')
        super().__init__(_EncoderPair(vision, language))

    @property
    def vision_dims(self) -> int:
        return self.vision.embed_dims

    @property
    def text_dims(self) -> int:
        return self.language.embed_dims

    @property
    def num_pairs(self) -> int:
        """Number of (DETR layer, BERT layer) pairs, one M3ISA each."""
        return len(self.text_layers)

    def _bert_layer(self, i: int) -> nn.Module:
        return self.language.bert.encoder.layer[self.text_layers[i]]

    def build_stages(self) -> List[List[BlockSpec]]:
        vision = []
        for layer in self.vision.encoder.layers:
            fc2 = layer.ffn.layers[-2]
            if not isinstance(fc2, nn.Linear) or not layer.self_attn.batch_first:
                raise TypeError('unexpected DETR encoder layer structure: the FFN must end with '
                                'Linear + Dropout and attention must be batch_first')
            vision.append(BlockSpec(module=layer, width=self.vision_dims,
                                    branches={'attn': layer.self_attn.attn, 'ffn': fc2}))
        text = []
        for i in range(self.num_pairs):
            layer = self._bert_layer(i)
            text.append(BlockSpec(module=layer, width=self.text_dims,
                                  branches={'attn': layer.attention.output.dense,
                                            'ffn': layer.output.dense}))
        return [vision, text]

    def out_stages(self) -> List[int]:
        return [0, 1]  # the last DETR layer and the last BERT layer feed the VL encoder

    def side_taps(self) -> Dict[str, Tuple[nn.Module, Callable]]:
        """Tap key -> (module, pick): the output ``pick(module output)`` is the tap, (B, T, d).

        Keys ``a{i}``, ``f{i}`` (DETR layer i; a_i batch-first), ``h{i}``, ``g{i}`` (BERT layer
        ``text_layers[i]``) for every pair ``i``, and ``E`` (BERT embedding output)."""
        taps = {'E': (self.language.bert.embeddings, _first)}
        for i, (vision, text) in enumerate(zip(*self.stages)):
            taps[f'a{i}'] = (vision.branches['attn'], _batch_first)
            taps[f'f{i}'] = (vision.branches['ffn'], _first)
            taps[f'h{i}'] = (self._bert_layer(i).attention.output, _first)
            taps[f'g{i}'] = (text.branches['ffn'], _first)
        return taps

    def attention_layernorm(self, i: int) -> nn.LayerNorm:
        """LN_att,i: the frozen LayerNorm closing the attention block of pair i's BERT layer."""
        return self._bert_layer(i).attention.output.LayerNorm

    def output_layernorm(self, i: int) -> nn.LayerNorm:
        """LN_out,i: the frozen LayerNorm closing the FFN block of pair i's BERT layer."""
        return self._bert_layer(i).output.LayerNorm

    def upstream_forward(self, x: GroundingInputs) -> Tuple[dict, dict]:
        """Both encoders on ``x`` -> ``(vision, language)`` output dicts."""
        return self.module(x)

    def trunk(self) -> List[nn.Module]:
        """The frozen modules (both encoders)."""
        return [self.vision, self.language]
