"""The ViT family: mmseg's ``VisionTransformer`` (one stage per ``TransformerEncoderLayer``).

A layer computes ``x -> x + a -> (x + a) + m`` (pre-norm) with
``a = attn.dropout_layer(attn.proj_drop(MHA(norm1(x))))`` (mmcv ``MultiheadAttention``) and
``m = ffn.dropout_layer(ffn.gamma2(ffn.layers(norm2(x + a))))`` (mmcv ``FFN``): the branches
are read at ``attn.dropout_layer`` and ``ffn.dropout_layer`` (both modules run in eval mode:
``Dropout``/``DropPath`` or ``nn.Identity``). AdaptFormer runs beside ``ffn.layers``. LoRA's
targets: the linears ``fc1 = ffn.layers[0][0]`` and ``fc2 = ffn.layers[1]`` (forward hooks), and
the attention's weights ``q``, ``k``, ``v`` (rows ``[0, d)``, ``[d, 2d)``, ``[2d, 3d)`` of
``nn.MultiheadAttention``'s fused ``in_proj_weight``) and ``out`` (``out_proj.weight``), which
``F.multi_head_attention_forward`` reads as tensors: they are adapted by parametrization
(:func:`~mmsidetune.tuners.layers.add_weight_update`).

Outputs: the stream after layer ``i`` for ``i`` in ``out_indices`` (the final norm ``norm1`` on
the last layer when ``final_norm``), without the class token, as ``(B, C, H / p, W / p)``.
There is no downsampling: E3VA's highway is ``h' = (h + a) + m + update`` in every layer
(docs/e3va_vit.md).
"""
from typing import List

import torch
import torch.nn as nn

from .base import BackboneFamily, BlockSpec, register_family, upstream_class

__all__ = ['ViTFamily']


def _vit_classes() -> tuple:
    try:
        from mmseg.models.backbones import VisionTransformer
    except ImportError:  # mmseg is optional for mmdet users
        return ()
    return (VisionTransformer, )


@register_family
class ViTFamily(BackboneFamily):
    """mmseg ``VisionTransformer``: one stage per encoder layer; output norm: the final norm
    (``norm1``) when ``final_norm`` and the last layer is an output.

    Shapes: input ``(B, 3, H, W)`` -> outputs ``(B, C, ceil(H / p), ceil(W / p))`` (``C =
    embed_dims``, ``p = patch_size``) for ``i`` in ``out_indices`` (``out_origin`` puts the
    patch embedding first; ``output_cls_token`` gives ``[map, (B, C) class token]`` pairs).

    Raises:
        ValueError: for ``out_indices`` outside ``[0, num_layers)`` (the upstream forward would
            silently leave them out) or FFNs without an identity connection.
    """

    name = 'vit'
    upstream_types = ('VisionTransformer', 'mmseg.VisionTransformer')

    def __init__(self, module: nn.Module):
        super().__init__(module)
        self._origin = None  # out_origin's output of the last stem call (see output_format)

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return upstream_class(module) in _vit_classes()

    def build_stages(self) -> List[List[BlockSpec]]:
        m = self.module
        num = len(m.layers)
        bad = [i for i in m.out_indices if not 0 <= i < num]
        if bad:
            raise ValueError(f'VisionTransformer: out_indices {tuple(m.out_indices)} must lie in '
                             f'[0, {num}) for {num} layers; {bad} would give no output')
        stages = []
        for i, layer in enumerate(m.layers):
            ffn = layer.ffn
            if not getattr(ffn, 'add_identity', False):
                raise ValueError(f'VisionTransformer.layers[{i}]: the FFN must add its identity '
                                 '(mmcv FFN(add_identity=True))')
            stages.append([BlockSpec(
                module=layer, width=layer.attn.embed_dims,
                branches=dict(attn=layer.attn.dropout_layer, mlp=ffn.dropout_layer),
                mlp=ffn.layers, linears=dict(fc1=ffn.layers[0][0], fc2=ffn.layers[1]),
                weights=self._attention_weights(layer.attn.attn))])
        return stages

    @staticmethod
    def _attention_weights(mha: nn.MultiheadAttention) -> dict:
        """q/k/v rows of the fused ``in_proj_weight`` and ``out_proj.weight``."""
        if not getattr(mha, '_qkv_same_embed_dim', False) or mha.in_proj_weight is None:
            return {}  # separate q/k/v projections (kdim/vdim set): not mmseg's ViT
        d = mha.embed_dim
        weights = {name: (mha, 'in_proj_weight', slice(i * d, (i + 1) * d))
                   for i, name in enumerate(('q', 'k', 'v'))}
        weights['out'] = (mha.out_proj, 'weight', None)
        return weights

    def out_stages(self) -> List[int]:
        return sorted(self.module.out_indices)

    def output_norms(self) -> List[nn.Module]:
        m = self.module
        return [m.norm1] if m.final_norm and len(m.layers) - 1 in m.out_indices else []

    def check_frozen(self, method_name: str) -> None:
        """Refuse ``frozen_exclude`` (the upstream partial freezing) with a frozen trunk."""
        super().check_frozen(method_name)
        exclude = list(getattr(self.module, 'frozen_exclude', ['all']))
        if 'all' not in exclude:
            raise ValueError(f'{method_name} freezes the whole VisionTransformer trunk already; '
                             f'remove frozen_exclude={exclude} from the backbone config')

    # ------------------------------------------------------------- highway protocol
    def stem(self, inputs):
        """Patch embedding, class token, position embedding, ``pre_ln``: the upstream forward
        up to the first layer. Context: ``hw_shape``."""
        m = self.module
        B = inputs.shape[0]
        x, hw_shape = m.patch_embed(inputs)
        cls_tokens = m.cls_token.expand(B, -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        x = m._pos_embeding(x, hw_shape, m.pos_embed)
        if not m.with_cls_token:
            x = x[:, 1:]
        if m.pre_norm:
            x = m.pre_ln(x)
        self._origin = self._to_output(x, hw_shape) if m.out_origin else None
        return x, hw_shape

    def run_stage(self, i, x, hw_shape):
        x = self.module.layers[i](x)
        return x, hw_shape, x, hw_shape

    def _to_output(self, x, hw_shape):
        m = self.module
        out = x[:, 1:] if m.with_cls_token else x
        B, _, C = out.shape
        out = out.reshape(B, hw_shape[0], hw_shape[1], C).permute(0, 3, 1, 2).contiguous()
        return [out, x[:, 0]] if m.output_cls_token else out

    def stage_output(self, i, h, hw_shape):
        m = self.module
        if i not in m.out_indices:
            return None
        if i == len(m.layers) - 1 and m.final_norm:
            h = m.norm1(h)
        return self._to_output(h, hw_shape)

    def output_format(self, outs):
        """The upstream tuple; with ``out_origin`` the patch embedding of the last
        :meth:`stem` call (frozen, no adapter before it) comes first."""
        origin, self._origin = self._origin, None
        return tuple(outs) if origin is None else (origin, *outs)
