"""M2ISTGrounder: the REC detector of M2IST, with the full and adapter-tuning baselines.

Paper: M2IST, Multi-Modal Interactive Side-Tuning for Efficient Referring Expression
Comprehension (arXiv 2407.01131); SPEC.md section 2. The base model is TransVG-R50.
"""
from contextlib import nullcontext
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.models.detectors import BaseDetector
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmengine.logging import print_log
from mmengine.registry import MODELS
from mmengine.structures import InstanceData

from ..datasets.transforms.box_mapping import canvas_to_original
from ..tuners.layers import BottleneckAdapter, add_serial_adapter

__all__ = ['M2ISTGrounder', 'TUNING_MODES']

#: ``tuning`` values: full fine-tuning, plain (serial) adapter-tuning, M2IST side-tuning.
TUNING_MODES = ('full', 'adapter', 'm2ist')


@MODELS.register_module()
class M2ISTGrounder(BaseDetector):
    """Referring expression comprehension: (image, phrase) -> one box.

    ::

        image ─ backbone (ResNet C5 + DETR encoder) ──┬─ x^v_N, z^v_0, taps a_i f_i
                                                       │        M3ISA side network (m2ist)
        phrase ─ language_model (BERT) ────────────────┴─ x^l, E, taps h_i g_i
             -> visual (B,N,dv), text (B,L,dl) -> neck (visu/text_proj, [REG], VL encoder)
             -> [REG] (B,d) -> bbox_head (MLP + sigmoid) -> normalised cxcywh (B, 4)

    ``tuning`` (one config field; what trains / where gradients flow):

    * ``'m2ist'``: backbone and language model frozen, in eval mode, run under
      ``torch.no_grad()``; the M3ISA side network mixes their taps; side network + neck + head
      train. Gradients never enter the encoders (only the frozen BERT LayerNorms the side network
      calls carry them back to the side network).
    * ``'adapter'``: plain adapter-tuning (paper Fig. 3b): the same frozen encoders (eval mode,
      with grad) with serial bottleneck adapters (dim -> ``adapter_bottleneck`` -> dim) after
      the attention and the FFN of every DETR layer and of the paired BERT layers; adapters +
      neck + head train and their gradients pass back through the frozen encoder layers. No M3ISA.
    * ``'full'``: TransVG-style full fine-tuning: everything trains (ResNet BN stays frozen,
      and the ResNet stem + layer1 as far as ``backbone.resnet.frozen_stages`` says).

    Freezing happens here in ``__init__`` (mmengine wraps the model in DDP before
    ``init_weights``/``train``).

    Args:
        backbone (dict): vision encoder, e.g. :class:`DETRVisionEncoder`.
        language_model (dict): e.g. :class:`BertLanguageModel`.
        neck (dict): e.g. :class:`GroundingVLEncoder`; ``visual_dims``, ``text_dims`` and
            ``num_text_tokens`` default to the encoders' width and ``max_tokens``.
        bbox_head (dict): e.g. :class:`GroundingBoxHead`.
        side_network (dict, optional): e.g. :class:`M3ISASideNetwork`; built only for
            ``tuning='m2ist'`` (dims and layer count filled in from the encoders).
        tuning (str): one of :data:`TUNING_MODES`. Default ``'m2ist'``.
        text_layers (sequence of int, optional): the BERT layer paired with each DETR layer
            (0-based). Default: the first ``backbone.num_layers`` BERT layers. UNVERIFIED
            reading of SPEC.md ("DETR encoder layer i, paired with BERT layer i") for a
            12-layer BERT: the authors' pairing was not checked against their code.
        adapter_bottleneck (int): hidden width of the serial adapters (``tuning='adapter'``).
        data_preprocessor (dict): e.g. :class:`GroundingDataPreprocessor`.

    Raises:
        ValueError: unknown ``tuning``; m2ist without ``side_network``; bad ``text_layers``;
            (in forward) samples without a phrase.
    """

    def __init__(self,
                 backbone: dict,
                 language_model: dict,
                 neck: dict,
                 bbox_head: dict,
                 side_network: Optional[dict] = None,
                 tuning: str = 'm2ist',
                 text_layers: Optional[Sequence[int]] = None,
                 adapter_bottleneck: int = 128,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if tuning not in TUNING_MODES:
            raise ValueError(f'tuning must be one of {TUNING_MODES}, got {tuning!r}')
        self.tuning = tuning
        self.backbone = MODELS.build(backbone)
        self.language_model = MODELS.build(language_model)
        num_layers, num_text = self.backbone.num_layers, self.language_model.num_layers
        self.text_layers = list(range(num_layers)) if text_layers is None else list(text_layers)
        if (len(self.text_layers) != num_layers
                or not all(0 <= j < num_text for j in self.text_layers)):
            raise ValueError(f'text_layers must name {num_layers} BERT layers in [0, {num_text}), '
                             f'got {self.text_layers}')
        vdims, tdims = self.backbone.embed_dims, self.language_model.embed_dims
        neck = dict(neck)
        neck.setdefault('visual_dims', vdims)
        neck.setdefault('text_dims', tdims)
        neck.setdefault('num_text_tokens', self.language_model.max_tokens)
        self.neck = MODELS.build(neck)
        self.bbox_head = MODELS.build(bbox_head)

        self.side_network = None
        self.serial_adapters = None
        if tuning == 'm2ist':
            if side_network is None:
                raise ValueError("tuning='m2ist' needs a side_network config")
            side_network = dict(side_network, visual_dims=vdims, text_dims=tdims,
                                num_layers=num_layers)
            self.side_network = MODELS.build(side_network)
        elif tuning == 'adapter':
            self.serial_adapters = self._insert_serial_adapters(adapter_bottleneck)
        if tuning != 'full':
            self.backbone.requires_grad_(False)
            self.language_model.requires_grad_(False)
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        print_log(f'M2ISTGrounder: tuning={tuning}, {trainable / 1e6:.3f} M of '
                  f'{total / 1e6:.3f} M parameters trainable', logger='current')

    def _insert_serial_adapters(self, bottleneck: int) -> nn.ModuleDict:
        """Serial adapters after attention and FFN of each DETR layer and each paired BERT layer."""
        vdims, tdims = self.backbone.embed_dims, self.language_model.embed_dims
        visual, text = nn.ModuleList(), nn.ModuleList()
        for attn, ffn in self.backbone.tap_modules():
            for module in (attn, ffn):
                visual.append(BottleneckAdapter(vdims, bottleneck, act_layer=nn.ReLU))
                add_serial_adapter(module, visual[-1])
        points = self.language_model.serial_tap_modules()
        for j in self.text_layers:
            for module in points[j]:
                text.append(BottleneckAdapter(tdims, bottleneck, act_layer=nn.ReLU))
                add_serial_adapter(module, text[-1])
        return nn.ModuleDict(dict(visual=visual, text=text))

    def tuning_share(self) -> dict:
        """Tuning parameters in the M2IST paper's convention (Table: 3.19 M = 2.11 % of 151 M):
        the side adapters (``'m2ist'``: the M3ISA side network; ``'adapter'``: the serial
        adapters; ``'full'``: every trainable parameter) over all parameters of the model.
        Projections, VL encoder and head are not counted as tuning parameters (they train in
        every mode). Read by :func:`mmsidetune.cost.count_parameters`."""
        if self.tuning == 'm2ist':
            tuned = list(self.side_network.parameters())
        elif self.tuning == 'adapter':
            tuned = list(self.serial_adapters.parameters())
        else:
            tuned = [p for p in self.parameters() if p.requires_grad]
        return dict(tuned=tuned, total=list(self.parameters()),
                    convention='side adapters / all parameters')

    def train(self, mode: bool = True) -> 'M2ISTGrounder':
        """Frozen encoders (m2ist, adapter) stay in eval mode."""
        super().train(mode)
        if self.tuning != 'full':
            self.backbone.eval()
            self.language_model.eval()
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
        pixel_mask = self._pixel_mask(inputs, data_samples)
        side = self.tuning == 'm2ist'
        with torch.no_grad() if side else nullcontext():
            vision = self.backbone(inputs, pixel_mask, record_taps=side)
            language = self.language_model(texts, inputs.device, record_taps=side)
        if side:
            lm = self.language_model
            visual, text = self.side_network(
                vision, language, self.text_layers,
                [lm.attention_layernorm(j) for j in self.text_layers],
                [lm.output_layernorm(j) for j in self.text_layers])
        else:
            visual, text = vision['feats'], language['hidden']
        return self.neck(visual, vision['mask'], text, language['mask'])

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
