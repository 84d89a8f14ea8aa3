"""Fold LoRA updates into the frozen weights for export, as HF PEFT's ``merge_and_unload``.

A LoRA-tuned linear layer computes ``W x + b + s B A x`` (``s = alpha / r``, docs/methods/lora.md),
which is ``W' x + b`` with ``W' = W + s B A``. :func:`merge_lora_state_dict` returns a model's state
dict with every ``W`` replaced by ``W'`` and no ``lora.*`` keys: the backbone part is a plain
upstream backbone's state dict (``backbone.stages.0.blocks.0.attn.w_msa.qkv.weight`` ...), which
loads with ``strict=True`` into the untouched mmdet/mmseg model built from
:func:`plain_backbone_config`. Its outputs equal the LoRA model's up to float rounding (the two
sum the same terms in another order). ``tools/model_converters/merge_lora.py`` does this for a
config and a checkpoint.
"""
from collections import OrderedDict, namedtuple
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from ..utils.dist import unwrap_model
from .core import BackboneTuning, TunedBackbone
from .layers import LoRAUpdate, frozen_weight, weight_updates
from .methods import LoRA
from .registry import method_class

__all__ = ['LoRALayer', 'LoRAMergeError', 'lora_backbones', 'lora_layers', 'merged_weights',
           'merge_lora_state_dict', 'plain_backbone_config']

#: One adapted layer: the state-dict key of the frozen weight ``W`` (out, in), the key prefix of
#: its update (``backbone.lora.0.1.qkv``), the ``nn.Linear`` (or the module owning a weight read
#: as a tensor, e.g. ``nn.MultiheadAttention``), its :class:`LoRAUpdate` and the rows of ``W`` it
#: adds to (a slice, None for all).
LoRALayer = namedtuple('LoRALayer', 'weight_key update_key linear update rows', defaults=(None, ))


class LoRAMergeError(ValueError):
    """A model (or config) has no LoRA to merge, or a LoRA update that cannot be merged."""


def lora_backbones(model: nn.Module) -> List[Tuple[str, TunedBackbone]]:
    """``(module name, backbone)`` of every :class:`TunedBackbone` in ``model`` tuned with LoRA
    (``''`` when ``model`` is one itself)."""
    return [(name, m) for name, m in unwrap_model(model).named_modules()
            if isinstance(m, TunedBackbone) and isinstance(m.method, LoRA)]


def lora_layers(model: nn.Module) -> List[LoRALayer]:
    """Every LoRA update of ``model`` with the frozen linear layer it is attached to.

    The layer of update ``lora.<stage>.<block>.<target>`` is the family's
    ``stages[stage][block].linears[target]`` (the update must be attached to it by its forward
    hook) or ``weights[target]`` (attached by parametrization), so the merged weight is exactly
    what the forward computed. Keys are module names (parameter names and state-dict keys agree).

    Raises:
        LoRAMergeError: no LoRA backbone in ``model``; an update whose layer is not an
            ``nn.Linear`` of its shape or does not call it; a :class:`LoRAUpdate` outside a
            LoRA-tuned :class:`TunedBackbone` (the merge would not know its layer).
    """
    model = unwrap_model(model)
    backbones = lora_backbones(model)
    if not backbones:
        kinds = sorted({f'{type(m).__name__}({m.tuning_method})' for m in model.modules()
                        if isinstance(m, TunedBackbone)})
        raise LoRAMergeError(f'{type(model).__name__} has no LoRA-tuned backbone to merge '
                             f'(tuned backbones: {kinds or "none"}); only method LoRA has '
                             'updates that fold into the frozen weights')
    name_of = {m: n for n, m in model.named_modules()}  # a module hashes by identity
    layers, seen = [], set()
    for _, backbone in backbones:
        stages = backbone.family.stages
        for s, stage in enumerate(backbone.method):
            for b, updates in enumerate(stage):
                for target, update in updates.items():
                    where = name_of[update]
                    seen.add(update)
                    if target in stages[s][b].weights:
                        module, param, rows = stages[s][b].weights[target]
                        key = f'{name_of[module]}.{param}'
                        if not any(u is update for _, _, u in weight_updates(module, param)):
                            raise LoRAMergeError(f'{where} is not attached to its weight {key} '
                                                 '(parametrization removed?)')
                        layers.append(LoRALayer(key, where, module, update, rows))
                        continue
                    linear = stages[s][b].linears[target]
                    shape = (update.B.shape[0], update.A.shape[1])
                    if not isinstance(linear, nn.Linear) or tuple(linear.weight.shape) != shape:
                        raise LoRAMergeError(f'{where}: expected an nn.Linear of weight shape '
                                             f'{shape}, got {linear!r}')
                    hooked = [getattr(h, 'adapter', None) for h in linear._forward_hooks.values()]
                    if not any(a is update for a in hooked):
                        raise LoRAMergeError(f'{where} is not attached to its layer '
                                             f'{name_of[linear]}.weight (hook removed?)')
                    layers.append(LoRALayer(f'{name_of[linear]}.weight', where, linear, update))
    stray = [n for n, m in model.named_modules() if isinstance(m, LoRAUpdate) and m not in seen]
    if stray:
        raise LoRAMergeError(f'{len(stray)} LoRA updates outside a LoRA-tuned TunedBackbone, '
                             f'cannot tell which layer they adapt: {stray[:5]}')
    return layers


def _frozen(layer: LoRALayer) -> torch.Tensor:
    """The stored frozen weight ``W`` of ``layer`` (not ``W`` plus its update)."""
    return frozen_weight(layer.linear, layer.weight_key.rsplit('.', 1)[1])


@torch.no_grad()
def merged_weights(layers: List[LoRALayer]) -> Dict[str, torch.Tensor]:
    """``weight key -> W' = W + s B A`` (float64, detached; several updates may add to one
    weight, e.g. the q and v rows of ``in_proj_weight``). The one merge of the export tool
    (:func:`merge_lora_state_dict`) and of ``TunedBackbone.merge_and_unload``.

    Shapes: ``W`` ``(out, in)``, ``B`` ``(rows, r)``, ``A`` ``(r, in)``.
    """
    merged = {}
    for layer in layers:
        up, key = layer.update, layer.weight_key
        if key not in merged:
            merged[key] = _frozen(layer).detach().to(torch.float64, copy=True)
        delta = up.B.detach().double() @ up.A.detach().double()
        merged[key][layer.rows if layer.rows is not None else slice(None)] += up.scaling * delta
    return merged


@torch.no_grad()
def merge_lora_state_dict(model: nn.Module) -> 'OrderedDict[str, torch.Tensor]':
    """``model``'s state dict with LoRA folded in: ``W' = W + s B A`` for every adapted layer and
    no LoRA keys. ``model`` is not changed.

    ``W'`` is computed in float64 and rounded once to ``W``'s dtype (:func:`merged_weights`).

    Args:
        model (nn.Module): a LoRA :class:`TunedBackbone` (or legacy ``LoRASwinTransformer``), or
            a model holding one (a detector / segmentor; wrapped or not).

    Returns:
        OrderedDict: key -> detached CPU tensor, in ``model.state_dict()`` order minus the LoRA
        keys; the backbone in the upstream layout (``backbone.stages...``).

    Raises:
        LoRAMergeError: see :func:`lora_layers`.
    """
    model = unwrap_model(model)
    merged = merged_weights(lora_layers(model))
    drop = tuple(f'{name}.{bb.method.layers_name}.' if name else f'{bb.method.layers_name}.'
                 for name, bb in lora_backbones(model))
    state = OrderedDict()
    for key, value in model.state_dict().items():
        if key.startswith(drop):
            continue
        state[key] = (merged[key].to(value.dtype).cpu() if key in merged else
                      value.detach().cpu().clone())
    return state


def plain_backbone_config(backbone_cfg: dict) -> dict:
    """The upstream backbone config of a LoRA backbone config: ``module`` of a
    ``TunedBackbone``, or the ``mmdet.SwinTransformer`` of a ``LoRASwinTransformer``. The
    wrapper's ``init_cfg`` (its pretrained trunk) is dropped: the merged checkpoint holds every
    weight.

    Raises:
        LoRAMergeError: if the config's backbone is not tuned with LoRA.
    """
    module, method, _ = BackboneTuning.split(backbone_cfg)
    if method is None or method_class(method['type']) is not LoRA:
        raise LoRAMergeError(f'backbone {backbone_cfg.get("type")} (method '
                             f'{method and method.get("type")}) is not tuned with LoRA: nothing '
                             'to merge')
    return module
