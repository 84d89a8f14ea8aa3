"""``TunedBackbone``: any supported mmdet/mmseg backbone with a tuning method applied.

In the style of mmpretrain's ``LoRAModel(module=...)``::

    backbone=dict(type='TunedBackbone',
                  module=dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3)),
                  method=dict(type='E3VA', rank=8))

The core owns what every method shares (docs/tuners.md): freezing in ``__init__`` (before
mmengine wraps the model in DDP), eval mode for the frozen trunk, the trainable set (the
method's layers and the family's output norms), the trunk dtype, pretrained weights and the
summary line. The state dict has the upstream backbone's own keys plus the method's layers
(``highway.*``, ``adapters.*``, ``lora.*``): a plain mmdet/mmseg checkpoint loads into a tuned
backbone and the tuned backbone's trunk loads into the plain one.
"""
import copy
import os
from collections import OrderedDict
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .families import family_for_type, find_family
from .freezing import freeze_except, keep_frozen_in_eval, summary_line
from .methods.base import TuningMethod
from .registry import (METHOD_VARIANTS, TUNING_METHODS, ModelTuning, build_method, method_class,
                       register_model_tuning)

__all__ = ['TunedBackbone', 'BACKBONE_ALIASES', 'BackboneTuning']

#: Legacy backbone type -> its class (``E3VASwinTransformer`` ...): each has ``split_config``.
BACKBONE_ALIASES = {}

_TRUNK = 'module'


@MODELS.register_module()
class TunedBackbone(BaseModule):
    """A backbone (any supported family, docs/backbones.md) tuned with one method.

    Args:
        module (dict | nn.Module): the upstream backbone config (built with mmengine's
            ``MODELS`` in the current scope, e.g. ``dict(type='ResNet', depth=50)``) or module.
        method (str | dict): the tuning method, a short name (``'e3va'``) or a config
            (``dict(type='E3VA', rank=8)``); see :data:`~mmsidetune.tuners.TUNING_METHODS`.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads trunk
            weights from a backbone, detector/segmentor or (Swin) official file; the upstream
            module's own ``init_cfg`` works as well.
        pretrained (str, optional): the trunk's pretrained file, as mmseg's ``EncoderDecoder``
            passes its ``model.pretrained`` to the backbone (mmseg's ``_base_/models/*.py``):
            the same as ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.

    Attributes:
        module: the upstream backbone (unmodified; adapters attach by forward hooks).
        family: its :class:`~mmsidetune.tuners.families.BackboneFamily`.
        tuning_method (str): the method's short name.

    Shapes:
        as the upstream backbone, e.g. ``(B, 3, H, W)`` -> tuple of ``(B, C_i, H_i, W_i)``.

    Raises:
        TypeError: for a backbone of an unsupported family (the supported ones are listed).
        ValueError: for a method that does not apply to the family (the reason is given), a
            frozen-trunk method with ``frozen_stages`` set, a method's bad options, or both
            ``pretrained`` and ``init_cfg``.
        TypeError: for a ``method`` that is not a name, a config or a ``TuningMethod``.
    """

    def __init__(self, module: Union[dict, nn.Module], method: Union[str, dict] = 'e3va',
                 init_cfg: Optional[dict] = None, pretrained: Optional[str] = None):
        if pretrained is not None:  # mmseg's EncoderDecoder passes its model.pretrained here
            if init_cfg is not None:
                raise ValueError(f'TunedBackbone: both pretrained={pretrained!r} (from mmseg\'s '
                                 f'model.pretrained) and init_cfg={init_cfg!r} are set; keep one '
                                 '(model.pretrained=None to use init_cfg)')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        self.module = MODELS.build(module) if isinstance(module, dict) else module
        self.family = find_family(self.module)
        method = build_method(method) if isinstance(method, (str, dict)) else method
        if not isinstance(method, TuningMethod):
            known = sorted(c.name for c in TUNING_METHODS.module_dict.values())
            raise TypeError(f'TunedBackbone: method must be a method name ({known}), a config '
                            f"dict(type='E3VA', ...) or a TuningMethod, got {method!r}")
        if method.freezes_trunk:
            self.family.check_frozen(type(method).__name__)
        method.attach(self.family)
        self.__dict__['_method'] = method
        if method.layers_name:
            self.add_module(method.layers_name, method)
        self.tuning_method = method.name
        if method.freezes_trunk:
            freeze_except(self, self.trainable_parameters())
        self._cast_trunk(method.trunk_dtype)
        self.train(self.training)  # a frozen trunk is in eval mode from the start
        self._register_state_dict_hook(_upstream_keys)
        self._register_load_state_dict_pre_hook(_prefixed_keys, with_module=True)
        # the trunk's sub-modules the method hooked, by name: model surgery after the build
        # (mmengine's SyncBN <-> BN conversion) replaces modules, the hooks are moved then
        self.__dict__['_hooked'] = [(n, m) for n, m in self.module.named_modules()
                                    if m._forward_hooks or m._forward_pre_hooks]
        print_log(self.tuning_summary(), logger='current')

    def __getattr__(self, name: str):
        """Attributes of the upstream backbone read through (``out_indices``, ``stages`` ...)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == _TRUNK or _TRUNK not in self._modules:
                raise
            return getattr(self._modules[_TRUNK], name)

    def trainable_modules(self) -> List[nn.Module]:
        """The modules whose parameters train: the method's layers (if any) and, for a method
        that trains them, the family's output norms; the whole backbone for ``Full``."""
        if not self._method.freezes_trunk:
            return [self]
        mods = [self._method] if self._method.layers_name else []
        return mods + (self.family.output_norms() if self._method.trains_output_norms else [])

    def trainable_parameters(self) -> List[nn.Parameter]:
        """The parameters that train: those of :meth:`trainable_modules` and the trunk
        parameters the method trains in place (Partial-1's last blocks, BitFit's biases)."""
        params = [p for m in self.trainable_modules() for p in m.parameters()]
        if self._method.freezes_trunk:
            params += self._method.trunk_parameters(self.family)
        return params

    @property
    def method(self):
        """The tuning method (its layers are ``getattr(self, method.layers_name)``)."""
        return self._method

    def forward(self, x: torch.Tensor):
        self.follow_replaced_modules()
        return self._method(self.family, x)

    def follow_replaced_modules(self) -> List[str]:
        """Move the method's hooks onto trunk sub-modules that replaced the hooked ones.

        mmengine's Runner replaces every SyncBN by a plain BN in one process
        (``revert_sync_batchnorm``) and every BN by a SyncBN under DDP with ``sync_bn``
        (``convert_sync_batchnorm``); the new modules carry no forward hooks, and adapters
        hooked on a norm (ResNet's ``norm3``: the residual branch's output) would stop running
        silently. Called at every forward (a few dict look-ups); the family's block specs are
        rebuilt after a move.

        Returns:
            list[str]: names of the sub-modules whose hooks were moved (usually none).
        """
        moved = []
        for k, (name, old) in enumerate(self._hooked):
            new = self.module.get_submodule(name) if name else self.module
            if new is not old:
                _move_hooks(old, new)
                self._hooked[k] = (name, new)
                moved.append(name)
        if moved:
            self.family.stages = self.family.build_stages()
        return moved

    def train(self, mode: bool = True):
        """Set train/eval mode; a frozen trunk always stays in eval mode (no DropPath, BN
        statistics fixed)."""
        super().train(mode)
        if self._method.freezes_trunk:
            keep_frozen_in_eval(self.module)
            self._method.train_trunk_part(self.family, mode)
        return self

    # ----------------------------------------------------------------- weights
    def _cast_trunk(self, dtype: torch.dtype) -> None:
        for t in self.family.frozen_tensors():
            if t.is_floating_point() and t.dtype != dtype:
                t.data = t.data.to(dtype)

    def init_weights(self) -> None:
        """The upstream init (random or its own ``init_cfg``), or this wrapper's
        ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``; done in float32, then the trunk
        is cast to the method's ``trunk_dtype``. The method's layers keep their own init.

        Raises:
            FileNotFoundError: if a local checkpoint path does not exist.
            KeyError: if trunk weights are missing from the checkpoint, or the checkpoint has
                trunk weights this model has no place for (listed; docs/backbones.md).
        """
        self._cast_trunk(torch.float32)
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            loader = getattr(self.family, 'load_pretrained', None) or self._load_pretrained
            loader(cfg['checkpoint'])
        else:
            self.module.init_weights()
        self._cast_trunk(self._method.trunk_dtype)
        self._is_init = True

    def _load_pretrained(self, path: str) -> None:
        from mmengine.runner.checkpoint import CheckpointLoader
        if '://' not in str(path) and not os.path.isfile(path):
            raise FileNotFoundError(f'{type(self.module).__name__}: pretrained checkpoint '
                                    f'{path!r} not found; download it or fix init_cfg.checkpoint')
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        state = ckpt.get('state_dict', ckpt.get('model', ckpt))
        state = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                            for k, v in state.items())
        if any(k.startswith('backbone.') for k in state):
            state = OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                                if k.startswith('backbone.'))
        result = self.module.load_state_dict(self.family.convert_checkpoint(state), strict=False)
        norms = {id(p) for m in self.family.output_norms() for p in m.parameters()}
        optional = {n for n, p in self.module.named_parameters() if id(p) in norms}
        missing = [k for k in result.missing_keys if k not in optional
                   and not k.endswith('num_batches_tracked')]
        if missing:
            raise KeyError(f'{type(self.module).__name__}: {len(missing)} trunk weights missing '
                           f'from {path}: {missing[:20]}{" ..." if len(missing) > 20 else ""}')
        # weights under a top-level name the trunk has but at a key it lacks (a deeper or wider
        # file: ResNet-101 into ResNet-50) belong to another architecture; weights under names
        # the trunk does not have at all (a classifier's fc/head, mmseg ViT's ln1 with
        # final_norm=False) are dropped deliberately and listed below (docs/backbones.md)
        tops = set(self.module._modules) | set(self.module._parameters)
        extra = [k for k in result.unexpected_keys if k.split('.', 1)[0] in tops
                 and not k.endswith('num_batches_tracked')]
        if extra:
            raise KeyError(f'{type(self.module).__name__}: {len(extra)} trunk weights in {path} '
                           f'have no place in this model (another depth or width?), first: '
                           f'{extra[:10]}{" ..." if len(extra) > 10 else ""}')
        print_log(f'{type(self.module).__name__}: loaded trunk weights from {path}; ignored: '
                  f'{sorted(result.unexpected_keys)[:10]}', logger='current')

    def tuning_summary(self) -> str:
        """One line: type, method, trainable / total backbone parameters."""
        return summary_line(type(self).__name__, [type(self.module).__name__], self.tuning_method,
                            self, 'backbone')


def _move_hooks(old: nn.Module, new: nn.Module) -> None:
    """Register ``old``'s forward (pre-)hooks on ``new``, with the same options."""
    for hid, hook in old._forward_pre_hooks.items():
        new.register_forward_pre_hook(hook, with_kwargs=hid in old._forward_pre_hooks_with_kwargs)
    for hid, hook in old._forward_hooks.items():
        new.register_forward_hook(hook, with_kwargs=hid in old._forward_hooks_with_kwargs,
                                  always_call=hid in old._forward_hooks_always_called)


def _upstream_keys(module, state_dict, prefix, local_metadata):
    """state_dict hook: ``module.<key>`` -> ``<key>`` (the upstream backbone's own layout),
    trunk keys first."""
    trunk = prefix + _TRUNK + '.'
    keys = [k for k in state_dict if k.startswith(prefix)]
    moved = [(k, state_dict.pop(k)) for k in keys]
    for k, v in moved:
        if k.startswith(trunk):
            state_dict[prefix + k[len(trunk):]] = v
    for k, v in moved:
        if not k.startswith(trunk):
            state_dict[k] = v
    return state_dict


def _prefixed_keys(module, state_dict, prefix, *args):
    """load pre-hook: keys in the upstream layout (``<key>``) -> ``module.<key>``; the method's
    layers (``highway.*`` ...) and keys already prefixed are left as they are."""
    own = set(module._modules) - {_TRUNK}
    for k in [k for k in state_dict if k.startswith(prefix)]:
        head = k[len(prefix):].split('.', 1)[0]
        if head != _TRUNK and head not in own:
            state_dict[prefix + _TRUNK + '.' + k[len(prefix):]] = state_dict.pop(k)


# --------------------------------------------------------------------- bench / config switching
class BackboneTuning(ModelTuning):
    """Switches ``model.backbone`` of an mmdet/mmseg config between tuning methods.

    Matches a backbone of type ``TunedBackbone``, a legacy alias (``E3VASwinTransformer`` ...) or
    an upstream type of a supported family; :meth:`apply` writes a ``TunedBackbone``."""

    @staticmethod
    def split(backbone: dict):
        """``(module config, method config or None, wrapper keys)`` of a backbone config."""
        backbone = copy.deepcopy(dict(backbone))
        kind = backbone.get('type')
        if kind in ('TunedBackbone', 'mmsidetune.TunedBackbone'):
            extra = {k: v for k, v in backbone.items() if k not in ('type', 'module', 'method')}
            method = backbone.get('method', 'e3va')
            return dict(backbone['module']), (dict(type=method) if isinstance(method, str) else
                                              dict(method)), extra
        if kind in BACKBONE_ALIASES:
            return BACKBONE_ALIASES[kind].split_config(backbone)
        return backbone, None, {}

    def _family(self, model_cfg):
        backbone = model_cfg.get('backbone')
        if not isinstance(backbone, dict):
            return None
        module, _, _ = self.split(backbone)
        return family_for_type(str(module.get('type')))

    def matches(self, model_cfg) -> bool:
        return self._family(model_cfg) is not None

    def methods(self, model_cfg) -> List[str]:
        family = self._family(model_cfg)  # registration order is display order
        return [m.name for m in TUNING_METHODS.module_dict.values()
                if m.for_backbones and m.applicable(family) is None]

    def apply(self, model_cfg, method: str) -> dict:
        name, options = METHOD_VARIANTS.get(method, (method, {}))
        if name not in self.methods(model_cfg):
            raise ValueError(f'method {method!r} does not apply to this backbone; applicable: '
                             f'{self.methods(model_cfg)}')
        model_cfg = copy.deepcopy(model_cfg)
        module, old, extra = self.split(model_cfg['backbone'])
        cls = method_class(name)
        new = dict(type=cls.__name__)
        if old is not None and method_class(old['type']) is cls:
            new.update({k: v for k, v in old.items() if k != 'type'})
        new.update(copy.deepcopy(options))
        if cls.freezes_trunk and module.get('frozen_stages', -1) == -1:
            module.pop('frozen_stages', None)  # implied by the frozen trunk
        model_cfg['backbone'] = dict(type='TunedBackbone', module=module, method=new, **extra)
        return model_cfg

    def describe(self, model_cfg) -> str:
        module, method, _ = self.split(model_cfg['backbone'])
        return f"TunedBackbone({module.get('type')}, {method and method.get('type')})"


register_model_tuning(BackboneTuning())
