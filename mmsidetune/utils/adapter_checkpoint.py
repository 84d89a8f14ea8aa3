"""Adapter-only checkpoints: a tuned model saved as its trainable part plus the trunk it needs.

A parameter-efficient model (E3VA: frozen Swin trunk + highway adapters; M2IST: frozen ResNet/DETR
and BERT encoders + side adapters) changes only the parameters that require grad. An adapter-only
file holds exactly those tensors, never the frozen trunk (E3VA Swin-B backbone: 4.6 MB, 1.4 % of
its weights; neck and heads, trained in full, are saved too).
What is saved is decided by ``requires_grad`` (the method's own declaration, made in its
``__init__``), not by parameter names, so any tuned model works without configuration:

* every parameter with ``requires_grad=True``;
* the persistent buffers of modules that own such a parameter directly (e.g. the running
  statistics of a trained BatchNorm), since they change in training too.

Everything else in ``model.state_dict()`` is the *trunk*. The file records a fingerprint of it
(``trunk_arch_sha256``: names, shapes and dtypes; ``trunk_sha256``: also the values), the
pretrained checkpoints named by ``init_cfg`` / transformers ``name_or_path``, the model and
tuning-method types and the mmsidetune version. :func:`load_adapter_checkpoint` refuses a file
whose keys, shapes or trunk do not match the model, so loading onto the pretrained trunk gives
the full model's outputs exactly, or one clear error.

The file is a plain dict of tensors, strings and numbers: it loads with ``torch.load(...,
weights_only=True)``, so sharing it is safe (unlike mmengine's full checkpoints, see
:mod:`mmsidetune.utils.checkpoint`).
"""
import hashlib
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
from .atomic_io import atomic_torch_save
from .checkpoint import state_dict_problems
from .dist import unwrap_model

__all__ = ['ADAPTER_FORMAT', 'adapter_state_dict', 'adapter_metadata', 'trunk_fingerprint',
           'save_adapter_checkpoint', 'load_adapter_checkpoint', 'is_adapter_checkpoint',
           'read_adapter_checkpoint', 'pretrained_sources', 'AdapterCheckpointError']

#: Value of the ``format`` field of every adapter-only file.
ADAPTER_FORMAT = 'mmsidetune.adapter_only.v1'


class AdapterCheckpointError(ValueError):
    """An adapter-only file does not fit the model (keys, shapes or trunk); the message says how.
    """


def _adapter_keys(model: nn.Module) -> set:
    """State-dict keys of the trainable parameters and of their modules' persistent buffers
    (a parameter's name is its state-dict key: a tuned backbone keeps the upstream's names).

    Raises:
        ValueError: a trainable parameter whose name is not a key of ``model.state_dict()``
            (a module that renames its keys): it would be left out of the file silently.
    """
    wanted = set()
    for name, module in model.named_modules():
        own = [n for n, p in module._parameters.items() if p is not None and p.requires_grad]
        if not own:
            continue
        prefix = f'{name}.' if name else ''
        wanted.update(prefix + n for n in own)
        wanted.update(prefix + n for n, b in module._buffers.items()
                      if b is not None and n not in module._non_persistent_buffers_set)
    keys = set(model.state_dict(keep_vars=True))
    lost = sorted(wanted - keys)
    if lost:
        raise ValueError(f'{type(model).__name__}: trainable tensors {lost[:5]} are not '
                         'state-dict keys (a module renames its keys): an adapter-only file '
                         'would leave them out')
    return wanted


def adapter_state_dict(model: nn.Module) -> 'OrderedDict[str, torch.Tensor]':
    """The trainable part of ``model``'s state dict (see the module docstring), on CPU.

    Args:
        model (nn.Module): A tuned model, possibly wrapped in (MM)DistributedDataParallel.

    Returns:
        OrderedDict: ``state_dict()`` keys -> detached CPU tensors, in ``state_dict()`` order.

    Raises:
        ValueError: if no parameter requires grad (nothing would be saved).
    """
    model = unwrap_model(model)
    wanted = _adapter_keys(model)
    if not wanted:
        raise ValueError(f'{type(model).__name__} has no parameter with requires_grad=True: '
                         'nothing to save in an adapter-only checkpoint')
    return OrderedDict((k, v.detach().cpu().clone()) for k, v in model.state_dict().items()
                       if k in wanted)


def trunk_fingerprint(model: nn.Module) -> Dict[str, str]:
    """SHA-256 of everything an adapter-only file does not hold (the frozen trunk).

    Returns:
        dict: ``trunk_arch_sha256`` over the sorted (name, shape, dtype) of the trunk tensors and
        ``trunk_sha256`` over those plus their values (hex strings). Two models give the same
        ``trunk_sha256`` exactly when their frozen weights are identical.
    """
    model = unwrap_model(model)
    saved = _adapter_keys(model)
    arch, full = hashlib.sha256(), hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name in saved:
            continue
        head = f'{name}|{tuple(tensor.shape)}|{tensor.dtype};'.encode()
        arch.update(head)
        full.update(head)
        t = tensor.detach().cpu().reshape(-1)
        full.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return dict(trunk_arch_sha256=arch.hexdigest(), trunk_sha256=full.hexdigest())


def pretrained_sources(model: nn.Module) -> Dict[str, str]:
    """Module name (``'.'`` for the root) -> the pretrained checkpoint it is built from: the
    ``checkpoint`` of an ``init_cfg=dict(type='Pretrained')``, or a transformers model's
    ``name_or_path`` (e.g. ``'bert-base-uncased'`` or a local folder)."""
    sources = {}
    for name, module in model.named_modules():
        cfg = getattr(module, 'init_cfg', None)
        cfgs = cfg if isinstance(cfg, list) else [cfg]
        for c in cfgs:
            if isinstance(c, dict) and c.get('type') == 'Pretrained' and c.get('checkpoint'):
                sources[name or '.'] = str(c['checkpoint'])
        hf = getattr(getattr(module, 'config', None), '_name_or_path', None)
        if isinstance(hf, str) and hf and hasattr(module, 'name_or_path'):
            sources[name or '.'] = hf
    return sources


def adapter_metadata(model: nn.Module) -> dict:
    """Metadata stored with the adapter tensors (see :func:`save_adapter_checkpoint`)."""
    from mmsidetune import __version__
    model = unwrap_model(model)
    methods = {name or '.': f'{type(m).__name__}({m.tuning_method})'
               for name, m in model.named_modules() if getattr(m, 'tuning_method', '')}
    backbone = getattr(model, 'backbone', None)
    return dict(
        format=ADAPTER_FORMAT,
        mmsidetune_version=__version__,
        model_type=type(model).__name__,
        backbone_type=type(backbone).__name__ if backbone is not None else None,
        tuning_methods=methods,
        pretrained=pretrained_sources(model),
        **trunk_fingerprint(model))


def save_adapter_checkpoint(model: nn.Module, path: str, extra_meta: Optional[dict] = None) -> dict:
    """Write ``model``'s adapter-only checkpoint to ``path`` atomically.

    The file is ``{'meta': {...}, 'state_dict': adapter_state_dict(model)}``; ``meta`` holds
    ``format``, ``mmsidetune_version``, ``model_type``, ``backbone_type``, ``tuning_methods``,
    ``pretrained`` (module -> trunk checkpoint), ``trunk_arch_sha256``, ``trunk_sha256``,
    ``params`` (name -> shape) and ``extra_meta`` (e.g. ``iter``). It is written to a temporary
    file in the same folder and renamed, so ``path`` is never a partial file.

    Returns:
        dict: the ``meta`` written.
    """
    state = adapter_state_dict(model)
    meta = adapter_metadata(model)
    meta['params'] = {k: list(v.shape) for k, v in state.items()}
    meta.update(extra_meta or {})
    atomic_torch_save({'meta': meta, 'state_dict': state}, path)
    return meta


def read_adapter_checkpoint(path: str) -> dict:
    """Load an adapter-only file (``weights_only=True``: it holds only tensors and plain data).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        AdapterCheckpointError: if the file is not an adapter-only checkpoint.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'adapter checkpoint not found: {path}')
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if not is_adapter_checkpoint(ckpt):
        raise AdapterCheckpointError(
            f'{path} is not an mmsidetune adapter-only checkpoint (no meta.format == '
            f'{ADAPTER_FORMAT!r}); convert a full checkpoint with '
            'tools/model_converters/full_to_adapter.py')
    return ckpt


def is_adapter_checkpoint(checkpoint: Union[str, dict]) -> bool:
    """Whether a loaded checkpoint dict (or the file at a path) is an adapter-only checkpoint."""
    if isinstance(checkpoint, str):
        if not osp.isfile(checkpoint):
            return False
        try:  # mmap: tensors are not read, only the pickled structure
            checkpoint = torch.load(checkpoint, map_location='cpu', weights_only=True, mmap=True)
        except pickle.UnpicklingError:  # a full mmengine checkpoint is refused: not ours
            return False
        except (RuntimeError, EOFError, ValueError, OSError):  # not a torch zip file (legacy,
            return False  # empty or damaged): the loaders decide and name the cause
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return isinstance(meta, dict) and meta.get('format') == ADAPTER_FORMAT


def load_adapter_checkpoint(model: nn.Module, path: str, check_trunk: bool = True) -> dict:
    """Load an adapter-only file onto ``model``, whose trunk must already hold its pretrained
    weights (build it, then ``init_weights()``).

    Args:
        model (nn.Module): A freshly built tuned model (wrapped or not).
        path (str): File written by :func:`save_adapter_checkpoint`.
        check_trunk (bool): Compare the trunk fingerprint. Defaults to True; turn off only to
            load adapters onto another trunk on purpose (outputs then differ).

    Returns:
        dict: the file's ``meta``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        AdapterCheckpointError: listing keys missing from the file, keys the model has no
            trainable place for, shape mismatches, or a trunk that differs in architecture
            (``trunk_arch_sha256``) or weights (``trunk_sha256``) from the one trained on.
    """
    ckpt = read_adapter_checkpoint(path)
    meta, state = ckpt['meta'], ckpt['state_dict']
    model = unwrap_model(model)
    keys = _adapter_keys(model)
    own = OrderedDict((k, v) for k, v in model.state_dict().items() if k in keys)
    problems = state_dict_problems(own, state, limit=20, what='trainable tensors')
    if problems:
        raise AdapterCheckpointError(
            f'{path} does not fit {type(model).__name__} (saved from {meta.get("model_type")} '
            f'{meta.get("tuning_methods")}): ' + '; '.join(problems))
    if check_trunk:
        mine = trunk_fingerprint(model)
        if mine['trunk_arch_sha256'] != meta.get('trunk_arch_sha256'):
            raise AdapterCheckpointError(
                f'{path} was trained on another trunk architecture (frozen tensor names/shapes '
                f'differ); it expects the trunk from {meta.get("pretrained")}')
        if mine['trunk_sha256'] != meta.get('trunk_sha256') and not meta.get('pretrained'):
            raise AdapterCheckpointError(
                f'{path} was saved from a model whose trunk came from no pretrained checkpoint '
                '(random init, no init_cfg): its adapters cannot be put back on another trunk; '
                'use the full checkpoint')
        if mine['trunk_sha256'] != meta.get('trunk_sha256'):
            raise AdapterCheckpointError(
                f'{path} was trained on other trunk weights than this model holds; load the '
                f'pretrained trunk first: the config\'s init_cfg must name '
                f'{meta.get("pretrained")} (tools/test.py and tools/ground.py load it before the '
                'adapters)')
    model.load_state_dict(state, strict=False)
    return meta
