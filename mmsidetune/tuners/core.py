"""``TunedBackbone``: any supported mmdet/mmseg backbone with a tuning method applied.

In the style of mmpretrain's ``LoRAModel(module=...)``::

    backbone=dict(type='TunedBackbone',
                  module=dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3)),
                  method=dict(type='E3VA', rank=8))

The core owns what every method shares (docs/tuners.md): the lifecycle of
:mod:`~mmsidetune.tuners.lifecycle` (freezing in ``__init__``, before mmengine wraps the model in
DDP; eval mode for the frozen trunk; the trainable set; the trunk dtype; the summary line), the
pretrained weights and the key layout: the tuned backbone is the upstream backbone itself, so
parameters and state-dict keys are the upstream's own plus the method's layers (``highway.*``,
``adapters.*``, ``lora.*``): a plain mmdet/mmseg checkpoint loads into a tuned backbone and the
tuned backbone's trunk loads into the plain one.
"""
import copy
import os
from contextlib import contextmanager
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .families import family_for_type, find_family, trunk_state, upstream_class
from .freezing import summary_line
from .lifecycle import TuningLifecycle
from .registry import (METHOD_VARIANTS, TUNING_METHODS, ModelTuning, method_class,
                       register_model_tuning)

__all__ = ['TunedBackbone', 'BACKBONE_ALIASES', 'BackboneTuning']

#: Legacy backbone type -> its class (``E3VASwinTransformer`` ...): each has ``split_config``.
BACKBONE_ALIASES = {}

#: (tuned base class, upstream class) -> the class of a tuned backbone of that upstream class
_TUNED_CLASSES = {}


def _tuned_class(base: type, upstream: type) -> type:
    """The cached subclass ``(base, upstream)``: ``TunedResNet`` for ``TunedBackbone`` on
    mmdet's ``ResNet``; a subclass of ``TunedBackbone`` (a legacy alias) keeps its own name."""
    cls = _TUNED_CLASSES.get((base, upstream))
    if cls is None:
        name = 'Tuned' + upstream.__name__ if base is TunedBackbone else base.__name__
        cls = type(name, (base, upstream), dict(
            __module__=base.__module__, __qualname__=name, __doc__=base.__doc__,
            _upstream=upstream, _tuned_base=base))
        _TUNED_CLASSES[(base, upstream)] = cls
    return cls


def _new_tuned(base: type, upstream: type) -> 'TunedBackbone':
    """An empty tuned backbone for ``copy.deepcopy`` and pickle (its state is set after)."""
    return object.__new__(_tuned_class(base, upstream))


@MODELS.register_module()
class TunedBackbone(TuningLifecycle, BaseModule):
    """A backbone (any supported family, docs/backbones.md) tuned with one method.

    The tuned backbone *is* the upstream backbone: ``TunedBackbone(module=...)`` builds the
    upstream module and makes it an instance of a subclass of both ``TunedBackbone`` and its
    class (``TunedSwinTransformer``, ``TunedResNet`` ..., cached per upstream class), so
    ``isinstance(tuned, SwinTransformer)`` holds, the upstream attributes (``out_indices``,
    ``stages`` ...) are its own and every trunk tensor has one name in parameters, state dicts,
    adapter-only files and optimizer groups: the upstream key (``stages.0.blocks.0.attn...``).
    The method's layers are the child ``method.layers_name`` (``highway.*``, ``adapters.*``,
    ``lora.*``). A plain mmdet/mmseg checkpoint loads into it and its trunk into the plain
    upstream backbone; keys ``module.<key>`` (the parameter names of earlier releases) load as
    ``<key>`` (the compatibility mapping, :func:`_legacy_trunk_keys`).

    Args:
        module (dict | nn.Module): the upstream backbone config (built with mmengine's
            ``MODELS`` in the current scope, e.g. ``dict(type='ResNet', depth=50)``) or module
            (it becomes the tuned backbone: ``unload()`` gives it back).
        method (str | dict): the tuning method, a short name (``'e3va'``) or a config
            (``dict(type='E3VA', rank=8)``); see :data:`~mmsidetune.tuners.TUNING_METHODS`.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads trunk
            weights from a backbone, detector/segmentor or (Swin) official file; the upstream
            module's own ``init_cfg`` works as well.
        pretrained (str, optional): the trunk's pretrained file, as mmseg's ``EncoderDecoder``
            passes its ``model.pretrained`` to the backbone (mmseg's ``_base_/models/*.py``):
            the same as ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.

    Attributes:
        family: its :class:`~mmsidetune.tuners.families.BackboneFamily`.
        method: the :class:`~mmsidetune.tuners.TuningMethod` (its layers).
        tuning_method (str): the method's short name.

    Shapes:
        as the upstream backbone, e.g. ``(B, 3, H, W)`` -> tuple of ``(B, C_i, H_i, W_i)``.

    Raises:
        TypeError: for a backbone of an unsupported family (the supported ones are listed), a
            module that is tuned already, or a ``method`` that is not a name, a config or a
            ``TuningMethod``.
        ValueError: for a method that does not apply to the family (the reason is given), a
            frozen-trunk method with ``frozen_stages`` set, a method's bad options, both
            ``pretrained`` and ``init_cfg``, or an ``init_cfg`` that is not ``Pretrained``.
    """

    _upstream: Optional[type] = None  # set on the tuned subclasses
    _tuned_base: Optional[type] = None

    def __new__(cls, module: Union[dict, nn.Module] = None, *args, **kwargs):
        if cls._upstream is not None:
            raise TypeError(f'{cls.__name__} is built by TunedBackbone(module=..., method=...)')
        upstream = MODELS.build(module) if isinstance(module, dict) else module
        if not isinstance(upstream, nn.Module):
            raise TypeError(f'{cls.__name__}: module must be a backbone config or an nn.Module, '
                            f'got {module!r}')
        if isinstance(upstream, TunedBackbone):
            raise TypeError(f'{cls.__name__}: {type(upstream).__name__} is tuned already; '
                            'unload() it first')
        find_family(upstream)  # TypeError for an unsupported backbone, before anything changes
        upstream.__class__ = _tuned_class(cls, type(upstream))
        return upstream  # Python calls __init__ on it: an instance of cls

    def __init__(self, module: Union[dict, nn.Module] = None, method: Union[str, dict] = 'e3va',
                 init_cfg: Optional[dict] = None, pretrained: Optional[str] = None):
        # no BaseModule.__init__: self is the built upstream module (see __new__)
        if pretrained is not None:  # mmseg's EncoderDecoder passes its model.pretrained here
            if init_cfg is not None:
                raise ValueError(f'TunedBackbone: both pretrained={pretrained!r} (from mmseg\'s '
                                 f'model.pretrained) and init_cfg={init_cfg!r} are set; keep one '
                                 '(model.pretrained=None to use init_cfg)')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        if init_cfg is not None and not (isinstance(init_cfg, dict)
                                         and init_cfg.get('type') == 'Pretrained'):
            raise ValueError(f'TunedBackbone: init_cfg must be dict(type=\'Pretrained\', '
                             f'checkpoint=PATH) (the trunk weights), got {init_cfg!r}; put other '
                             'initialisations in the module config')
        self.__dict__['_pretrained'] = init_cfg and init_cfg['checkpoint']
        if init_cfg is not None:
            self.init_cfg = copy.deepcopy(init_cfg)
        try:
            self.setup_tuning(find_family(self), method)
        except Exception:
            self.__class__ = self._upstream  # a bad method leaves the given module as it was
            raise
        self.__dict__['_own_handles'] = [
            self._register_load_state_dict_pre_hook(_legacy_trunk_keys)]
        # the trunk's sub-modules the method hooked, by name: model surgery after the build
        # (mmengine's SyncBN <-> BN conversion) replaces modules, the hooks are moved then
        layers = self._method.layers_name
        self.__dict__['_hooked'] = [
            (n, m) for n, m in self.named_modules()
            if n and not (layers and (n == layers or n.startswith(layers + '.')))
            and (m._forward_hooks or m._forward_pre_hooks)]

    def __reduce_ex__(self, protocol):
        """Deep copies (mmengine's EMA) and pickles rebuild the cached subclass."""
        reduced = super().__reduce_ex__(protocol)
        return (_new_tuned, (self._tuned_base, self._upstream)) + tuple(reduced[2:])

    def forward(self, x: torch.Tensor):
        """Run the method (which calls the upstream forward through the family)."""
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
            new = self.get_submodule(name)
            if new is not old:
                for handle in _move_hooks(old, new):
                    self._method.keep(handle)
                self._hooked[k] = (name, new)
                moved.append(name)
        if moved:
            self.family.stages = self.family.build_stages()
        return moved

    def train(self, mode: bool = True):
        """Set train/eval mode (the upstream ``train``: ``frozen_stages``, ``norm_eval``); a
        frozen trunk always stays in eval mode (no DropPath, BatchNorm statistics fixed), the
        method's layers follow ``mode``."""
        super().train(mode)
        self.keep_trunk_in_eval(mode)
        return self

    # ----------------------------------------------------------------- weights
    @contextmanager
    def _trunk_only(self):
        """The method's layers hidden from the upstream code (its ``init_weights`` re-draws
        every ``nn.Linear`` it finds, zero-initialised up-projections included)."""
        name = self._method.layers_name
        layers = self._modules.pop(name) if name else None
        try:
            yield
        finally:
            if name:
                self._modules[name] = layers

    def init_weights(self) -> None:
        """The upstream init (random or its own ``init_cfg``), or the pretrained trunk of this
        backbone's ``init_cfg`` / ``pretrained`` (:meth:`load_pretrained`); done in float32,
        then the trunk is cast to the method's ``trunk_dtype``. The method's layers keep their
        own init.

        Raises:
            FileNotFoundError: if a local checkpoint path does not exist.
            KeyError: if trunk weights are missing from the checkpoint, or the checkpoint has
                trunk weights this model has no place for (listed; docs/backbones.md).
        """
        self.cast_trunk(torch.float32)
        if self._pretrained:
            self.load_pretrained(self._pretrained)
        else:
            with self._trunk_only():
                upstream_class(self).init_weights(self)
        self.cast_trunk(self._method.trunk_dtype)
        self._is_init = True

    def load_pretrained(self, path: str) -> None:
        """Load trunk weights from a backbone, detector/segmentor (``backbone.*``) or official
        file (the family converts it: :meth:`BackboneFamily.convert_checkpoint`); the output
        norms may be missing (they train). The one pretrained loader of every family.

        Raises:
            FileNotFoundError: if a local checkpoint path does not exist.
            KeyError: if trunk weights are missing from the file, or the file has weights under
                a top-level name of the trunk at keys this model lacks (another depth or
                width); both listed.
        """
        from mmengine.runner.checkpoint import CheckpointLoader
        kind = upstream_class(self).__name__
        if '://' not in str(path) and not os.path.isfile(path):
            raise FileNotFoundError(f'{kind}: pretrained checkpoint {path!r} not found; '
                                    'download it or fix init_cfg.checkpoint')
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        with self._trunk_only():
            own = self.state_dict()
            state = self.family.convert_checkpoint(trunk_state(ckpt), own)
            result = self.load_state_dict(state, strict=False)
            norms = tuple(f'{n}.' for n, m in self.named_modules()
                          if any(m is o for o in self.family.output_norms()))
            tops = set(self._modules) | set(self._parameters)
        missing = [k for k in result.missing_keys if not k.startswith(norms)
                   and not k.endswith('num_batches_tracked')]
        if missing:
            raise KeyError(f'{kind}: {len(missing)} trunk weights missing from {path}: '
                           f'{missing[:20]}{" ..." if len(missing) > 20 else ""}')
        # weights under a top-level name the trunk has but at a key it lacks (a deeper or wider
        # file: ResNet-101 into ResNet-50) belong to another architecture; weights under names
        # the trunk does not have at all (a classifier's fc/head, mmseg ViT's ln1 with
        # final_norm=False) are dropped deliberately and listed below (docs/backbones.md)
        extra = [k for k in result.unexpected_keys if k.split('.', 1)[0] in tops
                 and not k.endswith('num_batches_tracked')]
        if extra:
            raise KeyError(f'{kind}: {len(extra)} trunk weights in {path} have no place in this '
                           f'model (another depth or width?), first: '
                           f'{extra[:10]}{" ..." if len(extra) > 10 else ""}')
        print_log(f'{kind}: loaded {len(state) - len(result.unexpected_keys)} trunk tensors '
                  f'from {path}; new (not in the file): {len(result.missing_keys)}; ignored: '
                  f'{sorted(result.unexpected_keys)[:10]}', logger='current')

    # ----------------------------------------------------------------- detach
    def unload(self) -> nn.Module:
        """Remove the method: its hooks and parametrizations, its layers; the trunk back in
        float32 with ``requires_grad`` on every parameter. Returns this module as an instance of
        the plain upstream class again (outputs and state dict those of the upstream backbone
        with these trunk weights), as PEFT's ``unload()``."""
        self._method.detach()
        for handle in self._own_handles:
            handle.remove()
        self.cast_trunk(torch.float32)
        if self._method.layers_name:
            del self._modules[self._method.layers_name]
        for key in ('family', '_method', '_hooked', '_pretrained', '_own_handles',
                    'tuning_method'):
            self.__dict__.pop(key, None)
        self.__class__ = self._upstream
        for p in self.parameters():
            p.requires_grad_(True)
        self.train(self.training)  # the upstream train() (mmdet's Swin returns None)
        return self

    def merge_and_unload(self) -> nn.Module:
        """LoRA only: fold every update into its frozen weight in memory (``W' = W + s B A``,
        in float64, rounded once: :func:`~mmsidetune.tuners.merge.merged_weights`, the export
        tool's math), then :meth:`unload`. Outputs equal the LoRA model's up to float rounding.

        Raises:
            LoRAMergeError: for a method other than LoRA (nothing to merge).
        """
        from .merge import _frozen, lora_layers, merged_weights
        layers = lora_layers(self)
        merged = merged_weights(layers)
        with torch.no_grad():
            for layer in layers:
                weight = _frozen(layer)
                weight.copy_(merged[layer.weight_key].to(weight.dtype))
        return self.unload()

    def tuning_owner(self) -> str:
        """``'TunedBackbone'`` (a legacy alias: its name, ``'E3VASwinTransformer'``)."""
        return self._tuned_base.__name__

    def tuning_summary(self) -> str:
        """One line: type, method, trainable / total backbone parameters."""
        return summary_line(self.tuning_owner(), [upstream_class(self).__name__],
                            self.tuning_method, self, 'backbone')


def _move_hooks(old: nn.Module, new: nn.Module) -> list:
    """Register ``old``'s forward (pre-)hooks on ``new``, with the same options; returns the
    new handles."""
    handles = []
    for hid, hook in old._forward_pre_hooks.items():
        handles.append(new.register_forward_pre_hook(
            hook, with_kwargs=hid in old._forward_pre_hooks_with_kwargs))
    for hid, hook in old._forward_hooks.items():
        handles.append(new.register_forward_hook(
            hook, with_kwargs=hid in old._forward_hooks_with_kwargs,
            always_call=hid in old._forward_hooks_always_called))
    return handles


def _legacy_trunk_keys(state_dict, prefix, *args) -> None:
    """The compatibility mapping (load pre-hook): ``<prefix>module.<key>`` -> ``<prefix><key>``.

    Earlier builds of mmsidetune 0.1.0 (to December 2026) held the trunk as ``module``:
    parameters were named ``backbone.module.<key>`` (state dicts already used
    ``backbone.<key>``). A state dict made
    from those names (``named_parameters()``, hand-written converters) still loads; nothing else
    of this project writes ``module.`` keys. Tested by tests/test_tuners/test_checkpoint_compat.py.
    """
    old = prefix + 'module.'
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + key[len(old):]] = state_dict.pop(key)


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
