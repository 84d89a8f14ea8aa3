"""TransVG's DETR-R50 checkpoints (``detr-r50-unc.pth``...) mapped onto :class:`DETRVisionEncoder`.

TransVG (djiajunustc/TransVG, ``models/visual_model/{detr,backbone,transformer}.py``) stores the
vision encoder as DETR does:

=================================================  =============================================
TransVG / DETR key                                  DETRVisionEncoder key
=================================================  =============================================
``backbone.0.body.<torchvision ResNet key>``        ``resnet.<same key>`` (mmdet's ResNet uses
                                                    torchvision's names: conv1, bn1, layerK.J...)
``input_proj.{weight,bias}``                        ``input_proj.{weight,bias}``
``transformer.encoder.layers.N.self_attn.*``        ``encoder.layers.N.self_attn.attn.*``
``transformer.encoder.layers.N.linear1.*``          ``encoder.layers.N.ffn.layers.0.0.*``
``transformer.encoder.layers.N.linear2.*``          ``encoder.layers.N.ffn.layers.1.*``
``transformer.encoder.layers.N.norm{1,2}.*``        ``encoder.layers.N.norms.{0,1}.*``
=================================================  =============================================

DETR's decoder, query embedding and detection heads (``transformer.decoder.*``,
``query_embed.*``, ``class_embed.*``, ``bbox_embed.*``) are not part of the encoder and are
reported as ignored. TransVG's frozen BN has no ``num_batches_tracked``: those buffers of the
model are the only keys allowed to be missing.

``tools/model_converters/transvg2mmsidetune.py`` writes the mapped tensors once as a plain
weights-only file (``{'state_dict': {'backbone.<key>': tensor}, 'meta': {'converter': ...}}``),
which :func:`load_transvg_detr` also reads, and which works as a config's ``load_from``.
"""
import pickle
import re
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.runner import CheckpointLoader

__all__ = ['convert_transvg_detr', 'load_transvg_detr', 'CONVERTER_TAG']

#: ``meta['converter']`` of files written by tools/model_converters/transvg2mmsidetune.py.
CONVERTER_TAG = 'transvg2mmsidetune'

_IGNORED = re.compile(r'^(transformer\.decoder\.|query_embed\.|class_embed\.|bbox_embed\.)')
_RULES = [
    (re.compile(r'^backbone\.0\.body\.(.+)$'), r'resnet.\1'),
    (re.compile(r'^input_proj\.(weight|bias)$'), r'input_proj.\1'),
    (re.compile(r'^transformer\.encoder\.layers\.(\d+)\.self_attn\.(.+)$'),
     r'encoder.layers.\1.self_attn.attn.\2'),
    (re.compile(r'^transformer\.encoder\.layers\.(\d+)\.linear1\.(.+)$'),
     r'encoder.layers.\1.ffn.layers.0.0.\2'),
    (re.compile(r'^transformer\.encoder\.layers\.(\d+)\.linear2\.(.+)$'),
     r'encoder.layers.\1.ffn.layers.1.\2'),
    (re.compile(r'^transformer\.encoder\.layers\.(\d+)\.norm1\.(.+)$'),
     r'encoder.layers.\1.norms.0.\2'),
    (re.compile(r'^transformer\.encoder\.layers\.(\d+)\.norm2\.(.+)$'),
     r'encoder.layers.\1.norms.1.\2'),
]


def convert_transvg_detr(state_dict: Dict[str, torch.Tensor], prefix: str = ''
                         ) -> Tuple[Dict[str, torch.Tensor], List[str], List[str]]:
    """Rename TransVG DETR keys to :class:`DETRVisionEncoder` keys.

    Args:
        state_dict: the checkpoint's ``model`` dict (or the whole dict when it has no ``model``).
        prefix: prefix of the DETR keys in ``state_dict`` (``'visumodel.'`` for a whole TransVG
            model); keys without it are reported as unexpected.

    Returns:
        ``(mapped, ignored, unexpected)``: the renamed tensors, the source keys of DETR parts the
        encoder does not have, and the source keys no rule matched.
    """
    mapped, ignored, unexpected = {}, [], []
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            unexpected.append(key)
            continue
        name = key[len(prefix):]
        if _IGNORED.match(name):
            ignored.append(key)
            continue
        for pattern, repl in _RULES:
            if pattern.match(name):
                mapped[pattern.sub(repl, name)] = value
                break
        else:
            unexpected.append(key)
    return mapped, ignored, unexpected


def load_transvg_detr(encoder: nn.Module, checkpoint, prefix: str = '',
                      logger: Optional[str] = 'current') -> Dict[str, List[str]]:
    """Load a TransVG DETR-R50 checkpoint (path or state dict) into ``encoder``, strictly.

    ``checkpoint`` is a TransVG/DETR file (``{'model': ...}`` or a bare state dict) or a file
    written by ``tools/model_converters/transvg2mmsidetune.py``.

    Returns:
        dict with ``mapped`` (target keys loaded) and ``ignored`` (DETR decoder/head keys).

    Raises:
        FileNotFoundError: when the checkpoint path does not exist.
        RuntimeError: for a file that cannot be loaded weights-only (convert it first).
        KeyError: listing every missing encoder key (other than BN ``num_batches_tracked``) and
            every unexpected checkpoint key, when there is any.
        ValueError: listing keys whose tensor shapes differ.
    """
    if isinstance(checkpoint, str):
        path = checkpoint
        try:
            checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        except pickle.UnpicklingError as e:
            raise RuntimeError(
                f'{path} holds more than tensors (e.g. training args) and is loaded weights-only. '
                'Convert it once (this unpickles it fully: only for files you trust): python '
                f'tools/model_converters/transvg2mmsidetune.py {path} OUT.pth, and point the '
                f'config at OUT.pth. ({e})') from e
    if checkpoint.get('meta', {}).get('converter') == CONVERTER_TAG:
        mapped, ignored, unexpected = {}, [], []
        for key, value in checkpoint['state_dict'].items():
            if key.startswith('backbone.'):
                mapped[key[len('backbone.'):]] = value
            else:
                unexpected.append(key)
    else:
        mapped, ignored, unexpected = convert_transvg_detr(checkpoint.get('model', checkpoint),
                                                           prefix)
    own = encoder.state_dict()
    missing = [k for k in own if k not in mapped and not k.endswith('num_batches_tracked')]
    unexpected += [f'{k} (renamed; no such model key)' for k in mapped if k not in own]
    if missing or unexpected:
        raise KeyError(f'TransVG DETR checkpoint does not fit {type(encoder).__name__}:\n'
                       f'missing keys ({len(missing)}): {missing}\n'
                       f'unexpected keys ({len(unexpected)}): {unexpected}')
    bad = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
           for k, v in mapped.items() if v.shape != own[k].shape]
    if bad:
        raise ValueError('TransVG DETR checkpoint shapes do not match:\n' + '\n'.join(bad))
    for k in own:  # frozen BN from TransVG has no num_batches_tracked
        if k not in mapped:
            mapped[k] = own[k]
    encoder.load_state_dict(mapped, strict=True)
    if logger is not None:
        from mmengine.logging import print_log
        print_log(f'loaded {len(mapped)} TransVG DETR tensors into {type(encoder).__name__}; '
                  f'ignored {len(ignored)} DETR decoder/head keys', logger=logger)
    return dict(mapped=sorted(mapped), ignored=ignored)
