"""The Swin Transformer family: mmdet's ``SwinTransformer`` (also used by mmseg configs) and
mmseg's own.

Block ``x -> x + a -> (x + a) + m`` with ``a = attn(norm1(x))`` (``ShiftWindowMSA``, drop path
included) and ``m = ffn.dropout_layer(ffn.gamma2(ffn.layers(norm2(x + a))))`` (mmcv ``FFN``):
the branches are read at ``block.attn`` and ``block.ffn.dropout_layer``. LoRA adapts
``attn.w_msa.qkv`` and ``attn.w_msa.proj``. Outputs are ``norm{i}`` of a stage's stream before
its ``PatchMerging``; the highway crosses a ``PatchMerging`` through the frozen layer itself
(docs/e3va.md).
"""
from collections import OrderedDict
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.backbones.swin import SwinTransformer as MMDetSwin
from mmdet.models.backbones.swin import swin_converter

from .base import BackboneFamily, BlockSpec, call_in_dtype, register_family, trunk_state

__all__ = ['SwinFamily', 'load_swin_state_dict']


def _swin_classes():
    classes = [MMDetSwin]
    try:
        from mmseg.models.backbones import SwinTransformer as MMSegSwin
        classes.append(MMSegSwin)
    except ImportError:  # mmseg is optional for mmdet users
        pass
    return tuple(classes)


def load_swin_state_dict(checkpoint: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Return the Swin trunk weights of ``checkpoint`` in mmdet/mmseg key layout.

    Accepts the official Swin release (``{'model': {'layers.0.blocks.0.attn.qkv.weight': ...}}``,
    converted with mmdet's ``swin_converter``), mmdet/mmseg detector or segmentor checkpoints
    (``backbone.`` prefix, stripped) and bare mmdet/mmseg backbone files (:func:`trunk_state`).

    Raises:
        KeyError: if no Swin trunk weight can be found in the file.
    """
    state = trunk_state(checkpoint)
    if any(k.startswith('layers.') for k in state):  # official microsoft/Swin-Transformer layout
        state = trunk_state({'state_dict': swin_converter(state)})  # it adds 'backbone.'
    if not any(k.startswith(('stages.', 'patch_embed.')) for k in state):
        raise KeyError('no Swin trunk weights found in the checkpoint (expected keys starting with '
                       "'layers.' (official Swin), 'backbone.stages.' or 'stages.'); first keys: "
                       f'{list(state)[:5]}')
    return state


@register_family
class SwinFamily(BackboneFamily):
    """mmdet/mmseg ``SwinTransformer``: stages of ``SwinBlock``, output norms ``norm{i}``.

    Shapes: input ``(B, 3, H, W)`` -> outputs ``(B, C_i, H / s_i, W / s_i)``, ``C_i =
    embed_dims * 2**i``, ``s_i = 4, 8, 16, 32``, for ``i`` in ``out_indices``.
    """

    name = 'swin'
    upstream_types = ('SwinTransformer', 'mmdet.SwinTransformer', 'mmseg.SwinTransformer')

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return isinstance(module, _swin_classes())

    def build_stages(self) -> List[List[BlockSpec]]:
        stages = []
        for i, stage in enumerate(self.module.stages):
            width = self.module.num_features[i]
            blocks = []
            for block in stage.blocks:
                ffn = block.ffn
                if not (getattr(ffn, 'add_identity', False) and hasattr(ffn, 'dropout_layer')):
                    raise TypeError('Swin blocks must use mmcv FFN(add_identity=True), got '
                                    f'{type(ffn).__name__}')
                w_msa = block.attn.w_msa
                blocks.append(BlockSpec(
                    module=block, width=width,
                    branches=dict(attn=block.attn, mlp=ffn.dropout_layer),
                    mlp=ffn.layers, linears=dict(qkv=w_msa.qkv, proj=w_msa.proj)))
            stages.append(blocks)
        return stages

    def output_norms(self) -> List[nn.Module]:
        return [getattr(self.module, f'norm{i}') for i in self.out_stages()]

    def out_stages(self) -> List[int]:
        return sorted(self.module.out_indices)

    # ------------------------------------------------------------- highway protocol
    def stem(self, x):
        m = self.module
        x, hw_shape = m.patch_embed(x)
        if m.use_abs_pos_embed:
            x = x + m.absolute_pos_embed
        return m.drop_after_pos(x), hw_shape

    def run_stage(self, i, x, hw_shape):
        x_next, next_hw, x_out, out_hw = self.module.stages[i](x, hw_shape)
        return x_next, next_hw, x_out, out_hw

    def stage_output(self, i, h, hw_shape):
        if i not in self.module.out_indices:
            return None
        out = getattr(self.module, f'norm{i}')(h)
        return out.view(-1, *hw_shape, self.module.num_features[i]).permute(0, 3, 1,
                                                                           2).contiguous()

    def has_transition(self, i):
        return self.module.stages[i].downsample is not None

    def transition(self, i, h, hw_shape):
        down = self.module.stages[i].downsample
        if down is None:
            return None
        return call_in_dtype(down, h.dtype, h, hw_shape)[0]

    # ------------------------------------------------------------- weights
    def convert_checkpoint(self, state, own):
        """Official Swin files converted (:func:`load_swin_state_dict`); the buffers mmdet
        derives from the window size (``relative_position_index``, official files'
        ``attn_mask``) taken from the model; ``relative_position_bias_table`` interpolated to
        the window size (bicubic, ``(S1**2, heads) -> (S2**2, heads)``); ``absolute_pos_embed``
        reshaped.

        Raises:
            KeyError: if the file has no Swin trunk weights, or another number of heads.
        """
        state = OrderedDict((k, v) for k, v in load_swin_state_dict({'state_dict': state}).items()
                            if not k.endswith(('.relative_position_index', 'attn_mask')))
        state.update((k, v) for k, v in own.items() if k.endswith('.relative_position_index'))
        if 'absolute_pos_embed' in state and 'absolute_pos_embed' in own:
            pos, target = state['absolute_pos_embed'], own['absolute_pos_embed']
            if pos.numel() == target.numel():
                state['absolute_pos_embed'] = pos.reshape(target.shape)
        for key in [k for k in state if k.endswith('relative_position_bias_table')]:
            table, target = state[key], own.get(key)
            if target is not None and table.shape != target.shape:
                if table.shape[1] != target.shape[1]:
                    raise KeyError(f'{key}: {table.shape[1]} heads in the checkpoint, '
                                   f'{target.shape[1]} in the model')
                s1, s2 = int(table.shape[0]**0.5), int(target.shape[0]**0.5)
                table = F.interpolate(table.T.reshape(1, -1, s1, s1), size=(s2, s2), mode='bicubic')
                state[key] = table.reshape(-1, s2 * s2).T.contiguous()
        return state
