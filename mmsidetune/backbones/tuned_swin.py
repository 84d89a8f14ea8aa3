"""Base class of every tuning method applied to mmdet's Swin Transformer.

A tuning method is a subclass of :class:`TunedSwinTransformer` that overrides one hook,
:meth:`TunedSwinTransformer.build_tuning_modules`, and declares which of its modules stay
trainable. The base class owns the rest: building mmdet's Swin trunk from the same arguments as
``mmdet.models.SwinTransformer`` (so an existing config switches method by changing ``type``
alone), freezing in ``__init__`` (before mmengine wraps the model in DDP), keeping the frozen trunk
in eval mode, loading pretrained weights with a clear error for missing keys, and logging the
trainable share.
"""
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.backbones.swin import SwinTransformer, swin_converter
from mmengine.logging import MMLogger, print_log
from mmengine.registry import MODELS
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'TunedSwinTransformer', 'TUNING_METHODS', 'TUNING_VARIANTS', 'register_tuning_variant',
    'load_swin_state_dict'
]

#: Bench/config method name -> registered backbone type, filled by ``@register_tuned_swin``.
TUNING_METHODS: Dict[str, str] = {}

#: Bench method name -> (a :data:`TUNING_METHODS` name, backbone options): one method run with
#: other settings (e.g. ``'e3va-lowmem'``), filled by :func:`register_tuning_variant`.
TUNING_VARIANTS: Dict[str, Tuple[str, dict]] = {}


def register_tuning_variant(name: str, method: str, **options) -> None:
    """Make ``name`` a bench method: tuning ``method`` with backbone ``options``."""
    if method not in TUNING_METHODS:
        raise KeyError(f'register_tuning_variant: unknown method {method!r}')
    TUNING_VARIANTS[name] = (method, dict(options))


def register_tuned_swin(method: str):
    """Register a :class:`TunedSwinTransformer` subclass in mmengine's root ``MODELS`` (visible
    from mmdet- and mmseg-scoped configs) and under ``method`` in :data:`TUNING_METHODS`."""

    def _register(cls):
        MODELS.register_module(module=cls)
        cls.tuning_method = method
        TUNING_METHODS[method] = cls.__name__
        return cls

    return _register


def load_swin_state_dict(checkpoint: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Return the Swin trunk weights of ``checkpoint`` in mmdet/mmseg key layout.

    Accepts the official Swin release (``{'model': {'layers.0.blocks.0.attn.qkv.weight': ...}}``,
    converted with mmdet's ``swin_converter``), mmdet/mmseg detector or segmentor checkpoints
    (``backbone.`` prefix, stripped) and bare mmdet/mmseg backbone files. ``module.`` prefixes
    (DDP) are stripped.

    Raises:
        KeyError: if no Swin trunk weight can be found in the file.
    """
    if 'state_dict' in checkpoint:
        state = checkpoint['state_dict']
    elif 'model' in checkpoint:
        state = checkpoint['model']
    else:
        state = checkpoint
    state = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                        for k, v in state.items())
    if any(k.startswith('layers.') for k in state):  # official microsoft/Swin-Transformer layout
        state = swin_converter(state)
    if any(k.startswith('backbone.') for k in state):
        state = OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                            if k.startswith('backbone.'))
    if not any(k.startswith(('stages.', 'patch_embed.')) for k in state):
        raise KeyError('no Swin trunk weights found in the checkpoint (expected keys starting with '
                       "'layers.' (official Swin), 'backbone.stages.' or 'stages.'); first keys: "
                       f'{list(state)[:5]}')
    return state


class TunedSwinTransformer(SwinTransformer):
    """mmdet's Swin Transformer with a tuning method applied (abstract base).

    Takes every argument of ``mmdet.models.backbones.SwinTransformer`` (mmseg's Swin takes a
    subset of them, so mmseg configs work too). Subclasses implement
    :meth:`build_tuning_modules` and set ``freeze_trunk``.

    Attributes:
        tuning_method (str): Short method name (``'full'``, ``'frozen'``, ``'e3va'`` ...).
        freeze_trunk (bool): Whether every trunk parameter is frozen in ``__init__`` and the
            trunk is kept in eval mode.

    Shapes:
        input ``(B, 3, H, W)`` -> list of ``(B, C_i, H / s_i, W / s_i)`` for the stages in
        ``out_indices``, with ``C_i = embed_dims * 2**i`` and ``s_i = 4, 8, 16, 32``.

    Raises:
        ValueError: if ``frozen_stages`` is set for a method that freezes the whole trunk.
    """

    tuning_method = ''
    freeze_trunk = True

    def __init__(self, **kwargs):
        if self.freeze_trunk and kwargs.get('frozen_stages', -1) != -1:
            raise ValueError(f'{type(self).__name__} freezes the whole trunk already; remove '
                             f"frozen_stages={kwargs['frozen_stages']} from the backbone config")
        super().__init__(**kwargs)
        self.build_tuning_modules()
        if self.freeze_trunk:
            trainable = {id(p) for m in self.trainable_modules() for p in m.parameters()}
            for p in self.parameters():
                p.requires_grad_(id(p) in trainable)
        print_log(self.tuning_summary(), logger='current')

    # ----------------------------------------------------------------- hooks for subclasses
    def build_tuning_modules(self) -> None:
        """Create the method's own modules (called once, after the trunk is built)."""

    def trainable_modules(self) -> List[nn.Module]:
        """Modules whose parameters stay trainable when ``freeze_trunk`` is True."""
        return []

    def reset_tuning_parameters(self) -> None:
        """Re-apply the method's own initialisation after mmdet's random init (default: none)."""

    # ----------------------------------------------------------------- shared behaviour
    def out_norms(self) -> List[nn.Module]:
        """The per-stage output norms ``norm{i}`` for ``i`` in ``out_indices``."""
        return [getattr(self, f'norm{i}') for i in self.out_indices]

    def trunk_modules(self) -> List[nn.Module]:
        """The frozen pretrained trunk: patch embedding, position dropout and the stages."""
        return [self.patch_embed, self.drop_after_pos, self.stages]

    def train(self, mode: bool = True):
        """Set train/eval mode; a frozen trunk always stays in eval mode (no DropPath)."""
        super().train(mode)
        if self.freeze_trunk:
            for m in self.trunk_modules():
                m.eval()
        return self

    def init_weights(self) -> None:
        """Random init (mmdet's) or load ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``.

        Raises:
            FileNotFoundError: if the local checkpoint path does not exist.
            KeyError: if trunk weights are missing from the checkpoint, or the checkpoint has
                trunk weights this architecture has no place for (the keys are listed).
        """
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            # mmdet's random init redraws every nn.Linear in self.modules(), the method's own
            # layers included (a zero-initialised up-projection would stop being zero).
            self.reset_tuning_parameters()
        else:
            self._load_pretrained(cfg['checkpoint'])

    def _load_pretrained(self, path: str) -> None:
        logger = MMLogger.get_current_instance()
        if '://' not in str(path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f'{type(self).__name__}: pretrained checkpoint {path!r} not '
                                        'found; download it or fix init_cfg.checkpoint')
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu', logger=logger)
        # relative_position_index buffers are derived from window_size: always the model's own.
        derived = '.relative_position_index'
        state = OrderedDict(
            (k, v) for k, v in load_swin_state_dict(ckpt).items() if not k.endswith(derived))
        own = self.state_dict()
        if 'absolute_pos_embed' in state and hasattr(self, 'absolute_pos_embed'):
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
        result = self.load_state_dict(state, strict=False)
        optional = {id(p) for m in self.out_norms() + self.trainable_modules()
                    for p in m.parameters()}
        optional_names = {n for n, p in self.named_parameters() if id(p) in optional}
        missing = [k for k in result.missing_keys
                   if k not in optional_names and not k.endswith(derived)]
        if missing:
            raise KeyError(f'{type(self).__name__}: {len(missing)} trunk weights missing from '
                           f'{path}: {missing[:20]}{" ..." if len(missing) > 20 else ""}')
        # Trunk weights the model has no place for mean another architecture (depth, layout);
        # official files' attention masks (recomputed by mmdet) and heads are fine to drop.
        extra = [k for k in result.unexpected_keys
                 if k.startswith(('stages.', 'patch_embed.')) and not k.endswith('attn_mask')]
        if extra:
            raise KeyError(f'{type(self).__name__}: {len(extra)} trunk weights in {path} have no '
                           f'place in this model (check depths/embed_dims): {extra[:20]}'
                           f'{" ..." if len(extra) > 20 else ""}')
        new = [k for k in result.missing_keys if not k.endswith(derived)]
        print_log(f'{type(self).__name__}: loaded {len(state) - len(result.unexpected_keys)} '
                  f'trunk tensors from {path}; new (not in the file): {len(new)}; '
                  f'ignored: {sorted(result.unexpected_keys)[:10]}',
                  logger=logger)

    def tuning_summary(self) -> str:
        """One line: method, trainable / total backbone parameters."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return (f'{type(self).__name__} ({self.tuning_method}): {trainable / 1e6:.3f} M of '
                f'{total / 1e6:.2f} M backbone parameters trainable '
                f'({100.0 * trainable / max(total, 1):.2f} %)')
