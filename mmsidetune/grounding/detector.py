"""M2ISTGrounder: the REC detector of M2IST, with the full and adapter-tuning baselines.

Paper: M2IST, Multi-Modal Interactive Side-Tuning for Efficient Referring Expression
Comprehension (arXiv 2407.01131), Fig. 1 (the three ways of tuning) and Fig. 2 (architecture);
docs/m2ist.md. The base model is TransVG-R50.
"""
import re
from typing import Dict, Optional, Sequence, Union

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmengine.logging import print_log
from mmengine.registry import MODELS
from mmengine.structures import InstanceData

from ..datasets.transforms.box_mapping import canvas_to_original
from ..tuners.freezing import summary_line
from ..tuners.lifecycle import TuningLifecycle
from ..tuners.registry import method_class
from .encoders import GroundingEncoders, GroundingInputs

__all__ = ['M2ISTGrounder']


@MODELS.register_module()
class M2ISTGrounder(TuningLifecycle, BaseDetector):
    """Referring expression comprehension: (image, phrase) -> one box.

    ::

        image ─ backbone (ResNet C5 + DETR encoder) ──┬─ x^v_N, z^v_0, taps a_i f_i
                                                       │        M3ISA side network (m2ist)
        phrase ─ language_model (BERT) ────────────────┴─ x^l, E, taps h_i g_i
             -> visual (B,N,dv), text (B,L,dl) -> neck (visu/text_proj, [REG], VL encoder)
             -> [REG] (B,d) -> bbox_head (MLP + sigmoid) -> normalised cxcywh (B, 4)

    The tuning method (``method``, one config field; a method of the tuner core's
    :data:`~mmsidetune.tuners.TUNING_METHODS`, attached to the two encoders described by
    :class:`~mmsidetune.grounding.GroundingEncoders`):

    * ``'m2ist'`` (:class:`~mmsidetune.grounding.M2IST`, paper Fig. 1c): backbone and language
      model frozen, in eval mode, run under ``torch.no_grad()``; the M3ISA side network
      (``side_network``) mixes their taps; side network + neck + head train. Gradients never
      enter the encoders (only the frozen BERT LayerNorms the side network calls carry them back
      to the side network). Only the BERT layers paired with the DETR layers are tapped.
    * ``'adapter'`` (:class:`~mmsidetune.tuners.Adapter`, ReLU; paper Fig. 1b): the same frozen
      encoders (eval mode, with grad) with serial bottleneck adapters (``adapters``: dim ->
      ``adapter_bottleneck`` -> dim, up-projection zero at init, so the model starts as the
      frozen one) after the attention and the FFN of every DETR layer and of the paired BERT
      layers; adapters + neck + head train and their gradients pass back through the frozen
      encoder layers.
    * ``'full'`` (:class:`~mmsidetune.tuners.Full`, paper Fig. 1a): TransVG-style full
      fine-tuning: everything trains (ResNet BN stays frozen, and the ResNet stem + layer1 as
      far as ``backbone.resnet.frozen_stages`` says).

    Build, attach, freezing (here in ``__init__``: mmengine wraps the model in DDP before
    ``init_weights``/``train``), eval mode, trunk dtype and the summary line are the tuner
    core's one lifecycle (:class:`~mmsidetune.tuners.lifecycle.TuningLifecycle`), as for
    :class:`~mmsidetune.tuners.TunedBackbone`.

    Args:
        backbone (dict): vision encoder, e.g. :class:`DETRVisionEncoder`.
        language_model (dict): e.g. :class:`BertLanguageModel`.
        neck (dict): e.g. :class:`GroundingVLEncoder`; ``visual_dims``, ``text_dims`` and
            ``num_text_tokens`` default to the encoders' width and ``max_tokens``.
        bbox_head (dict): e.g. :class:`GroundingBoxHead`.
        method (str | dict, optional): the tuning method: a short name of
            :attr:`supported_methods` (``'m2ist'``, ``'adapter'``, ``'full'``), whose options
            come from ``side_network`` / ``adapter_bottleneck``, or a method config that sets
            its options itself (``dict(type='M2IST', bottleneck=64)``,
            ``dict(type='Adapter', hidden_dims=128, act='ReLU')``). Default ``'m2ist'``.
        side_network (dict, optional): options of ``method='m2ist'``: ``bottleneck`` (default
            128) and ``scale`` (0.1) of the M3ISAs. A ``type`` key (``'M3ISASideNetwork'`` in
            configs of earlier releases, or ``'M2IST'``) is accepted.
        adapter_bottleneck (int): hidden width of the serial adapters of ``method='adapter'``.
        text_layers (sequence of int, optional): the BERT layer paired with each DETR layer
            (0-based). Default: the first ``backbone.num_layers`` BERT layers. UNVERIFIED
            reading of the paper ("DETR encoder layer i, paired with BERT layer i") for a
            12-layer BERT: the authors' pairing was not checked against their code.
        tuning (str, optional): deprecated name of ``method`` (configs of earlier releases);
            logs a warning.
        data_preprocessor (dict): e.g. :class:`GroundingDataPreprocessor`.

    Attributes:
        tuning_method (str): the method's short name (as ``TunedBackbone.tuning_method``;
            recorded in adapter-only checkpoints).
        method: the :class:`~mmsidetune.tuners.TuningMethod` (its layers are
            ``side_network`` for m2ist, ``adapters`` for adapter; full has none).
        family (GroundingEncoders): the encoders as the method sees them.

    Raises:
        ValueError: an unknown or unsupported method, ``tuning`` and ``method`` that disagree,
            a ``side_network`` of another type, bad ``text_layers``; (in forward) samples
            without a phrase.
    """

    #: Short names of the tuning methods this model supports (bench's ``--methods all``).
    supported_methods = ('full', 'adapter', 'm2ist')

    def __init__(self,
                 backbone: dict,
                 language_model: dict,
                 neck: dict,
                 bbox_head: dict,
                 method: Optional[Union[str, dict]] = None,
                 side_network: Optional[dict] = None,
                 adapter_bottleneck: int = 128,
                 text_layers: Optional[Sequence[int]] = None,
                 tuning: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        method = self._method_config(method, tuning, side_network, adapter_bottleneck)
        self.backbone = MODELS.build(backbone)
        self.language_model = MODELS.build(language_model)
        num_layers = self.backbone.num_layers
        self.text_layers = list(range(num_layers)) if text_layers is None else list(text_layers)
        family = GroundingEncoders(self.backbone, self.language_model, self.text_layers)
        vdims, tdims = self.backbone.embed_dims, self.language_model.embed_dims
        neck = dict(neck)
        neck.setdefault('visual_dims', vdims)
        neck.setdefault('text_dims', tdims)
        neck.setdefault('num_text_tokens', self.language_model.max_tokens)
        self.neck = MODELS.build(neck)
        self.bbox_head = MODELS.build(bbox_head)

        self._register_load_state_dict_pre_hook(_upgrade_legacy_keys, with_module=True)
        self.setup_tuning(family, method)

    @classmethod
    def _method_config(cls, method, tuning, side_network, adapter_bottleneck) -> dict:
        """The method config of the constructor arguments (see the class docstring)."""
        if tuning is not None:
            print_log(f"M2ISTGrounder: 'tuning' is deprecated; write method={tuning!r}",
                      logger='current', level=30)
            if method is not None and method != tuning:
                raise ValueError(f'M2ISTGrounder: tuning={tuning!r} (deprecated) and '
                                 f'method={method!r} disagree; give method only')
            method = tuning
        if method is None:
            method = 'm2ist'
        if isinstance(method, str):
            name = method_class(method).name  # a class name ('M2IST') works as well
        else:
            method = dict(method)
            name = method_class(method.get('type')).name
        if name not in cls.supported_methods:
            raise ValueError(f'M2ISTGrounder: method {name!r} is not supported; supported: '
                             f'{list(cls.supported_methods)} (docs/m2ist.md)')
        if not isinstance(method, str):
            return method
        if name == 'm2ist':
            options = dict(side_network or {})
            kind = options.pop('type', 'M2IST')
            if kind not in ('M2IST', 'M3ISASideNetwork'):
                raise ValueError(f"M2ISTGrounder: side_network type {kind!r} is not the M3ISA "
                                 "side network; give side_network=dict(bottleneck=..., "
                                 "scale=...) or method=dict(type='M2IST', ...)")
            return dict(type='M2IST', **options)
        if name == 'adapter':
            return dict(type='Adapter', hidden_dims=adapter_bottleneck, act='ReLU')
        return dict(type='Full')

    @property
    def tuning(self) -> str:
        """Deprecated name of :attr:`tuning_method`."""
        return self.tuning_method

    def tuning_summary(self) -> str:
        """One line: type, encoders, method, trainable / total model parameters."""
        return summary_line(type(self).__name__,
                            [type(self.backbone).__name__, type(self.language_model).__name__],
                            self.tuning_method, self, 'model')

    def tuning_share(self) -> dict:
        """Tuning parameters in the M2IST paper's convention (Table: 3.19 M = 2.11 % of 151 M):
        the method's layers (``'m2ist'``: the M3ISA side network; ``'adapter'``: the serial
        adapters; ``'full'``: every trainable parameter) over all parameters of the model.
        Projections, VL encoder and head are not counted as tuning parameters (they train in
        every mode). Read by :func:`mmsidetune.cost.count_parameters`."""
        if self._method.layers_name:
            tuned = list(self._method.parameters())
        else:
            tuned = [p for p in self.parameters() if p.requires_grad]
        return dict(tuned=tuned, total=list(self.parameters()),
                    convention='side adapters / all parameters')

    def train(self, mode: bool = True) -> 'M2ISTGrounder':
        """Frozen encoders (m2ist, adapter) stay in eval mode."""
        super().train(mode)
        self.keep_trunk_in_eval(mode)
        return self

    def _pixel_mask(self, inputs: torch.Tensor, data_samples) -> torch.Tensor:
        masks = [getattr(s, 'pixel_mask', None) for s in data_samples]
        if any(m is None for m in masks):
            raise ValueError('a data sample has no pixel_mask: M2ISTGrounder needs '
                             'GroundingDataPreprocessor, which builds it from img_shape and '
                             'pad_offset (the padding must not be attended)')
        return torch.stack(masks).to(inputs.device)

    def extract_feat(self, inputs: torch.Tensor, data_samples) -> torch.Tensor:
        """Images (B, 3, H, W) + samples with ``text`` -> [REG] features (B, d)."""
        if data_samples is None or len(data_samples) != inputs.shape[0]:
            raise ValueError('M2ISTGrounder needs one data sample with a `text` phrase per image')
        texts = [s.get('text', None) for s in data_samples]
        x = GroundingInputs(inputs, self._pixel_mask(inputs, data_samples), texts)
        vision, language = self._method(self.family, x)
        return self.neck(vision['feats'], vision['mask'], language['hidden'], language['mask'])

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples=None) -> torch.Tensor:
        """Tensor mode: normalised (cx, cy, w, h) boxes (B, 4) on the padded canvas."""
        return self.bbox_head(self.extract_feat(batch_inputs, batch_data_samples))

    def _targets(self, inputs: torch.Tensor, data_samples) -> torch.Tensor:
        h, w = inputs.shape[-2:]
        boxes = []
        for k, s in enumerate(data_samples):
            b = s.gt_instances.bboxes
            b = getattr(b, 'tensor', b)  # mmdet box types
            if b.shape != (1, 4):
                raise ValueError(f'sample {k}: expected one gt box (1, 4), got {tuple(b.shape)}')
            boxes.append(b.to(inputs.device, torch.float32))
        return bbox_xyxy_to_cxcywh(torch.cat(boxes)) / inputs.new_tensor([w, h, w, h])

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples) -> Dict[str, torch.Tensor]:
        """dict(loss_bbox, loss_giou) against ``gt_instances.bboxes`` (xyxy canvas pixels)."""
        pred = self._forward(batch_inputs, batch_data_samples)
        return self.bbox_head.loss(pred, self._targets(batch_inputs, batch_data_samples))

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples, rescale: bool = True):
        """Fill ``pred_instances`` (bboxes (1, 4) xyxy, scores (1,) = 1, labels (1,) = 0).

        Boxes are in original image pixels (``rescale=True``, through the data side's
        ``canvas_to_original``: the packed ``homography_matrix`` when present, else
        ``pad_offset`` / ``flip`` / ``scale_factor``) or canvas pixels.
        """
        h, w = batch_inputs.shape[-2:]
        pred = self._forward(batch_inputs, batch_data_samples)
        boxes = bbox_cxcywh_to_xyxy(pred) * pred.new_tensor([w, h, w, h])
        for box, sample in zip(boxes, batch_data_samples):
            box = box[None]
            if rescale:
                box = canvas_to_original(box, sample.metainfo)
            sample.pred_instances = InstanceData(
                bboxes=box, scores=box.new_ones(1), labels=torch.zeros(1, dtype=torch.long,
                                                                       device=box.device))
        return batch_data_samples


#: State-dict keys of earlier releases -> today's (M3ISASideNetwork, the grounder's own
#: serial adapters): full checkpoints of those releases still load.
_LEGACY_SIDE = re.compile(r'^side_network\.layers\.(\d+)\.')
_LEGACY_ADAPTER = re.compile(r'^serial_adapters\.(visual|text)\.(\d+)\.')


def _legacy_key(key: str) -> str:
    key = _LEGACY_SIDE.sub(r'side_network.\1.', key)
    match = _LEGACY_ADAPTER.search(key)
    if match:
        stage = 0 if match.group(1) == 'visual' else 1
        k = int(match.group(2))
        key = (key[:match.start()] + f'adapters.{stage}.{k // 2}.{("attn", "ffn")[k % 2]}.' +
               key[match.end():])
    return key


def _upgrade_legacy_keys(module, state_dict, prefix, *args):
    """load pre-hook: ``side_network.layers.<i>.`` -> ``side_network.<i>.``;
    ``serial_adapters.visual|text.<2k (+1)>.`` -> ``adapters.0|1.<k>.attn|ffn.``."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        new = prefix + _legacy_key(key[len(prefix):])
        if new != key:
            state_dict[new] = state_dict.pop(key)
