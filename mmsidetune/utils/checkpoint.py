"""Loading mmengine's own full checkpoints under torch >= 2.6, for files the user points at.

mmengine 0.10.7 loads local checkpoints with ``torch.load`` and torch's default
``weights_only=True`` (torch >= 2.6), which refuses the ``HistoryBuffer`` objects mmengine itself
pickles into every checkpoint (``UnpicklingError ... HistoryBuffer``): ``--resume`` and testing a
checkpoint of a finished run fail. The upstream fix is unreleased.

:func:`trust_checkpoint` records paths the user named (``tools/test.py CHECKPOINT``,
``tools/train.py --resume [CKPT]`` and its ``work_dir``; with ``mim train ... --resume`` and
``mim test ... --checkpoint`` the config's :class:`~mmsidetune.hooks.AtomicCheckpointHook` does
the same). mmengine's local loader
is replaced by one that unpickles *only those* files fully (``weights_only=False``) and keeps
torch's safe default for every other file. Unpickling runs code from the file: trust only your
own files.
"""
import os.path as osp
from typing import Set

import torch
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['trust_checkpoint', 'is_trusted_checkpoint']

_TRUSTED_FILES: Set[str] = set()
_TRUSTED_DIRS: Set[str] = set()


def trust_checkpoint(path: str) -> None:
    """Allow full unpickling of checkpoint file ``path``, or of every file under folder ``path``."""
    real = osp.realpath(osp.expanduser(path))
    (_TRUSTED_DIRS if osp.isdir(real) else _TRUSTED_FILES).add(real)


def is_trusted_checkpoint(path: str) -> bool:
    """Whether ``path`` was trusted with :func:`trust_checkpoint` (directly or by its folder)."""
    real = osp.realpath(osp.expanduser(path))
    return real in _TRUSTED_FILES or any(real.startswith(d + osp.sep) for d in _TRUSTED_DIRS)


@CheckpointLoader.register_scheme(prefixes='', force=True)
def _load_local(filename: str, map_location=None):
    """mmengine's local loader, with ``weights_only=False`` for trusted files only.

    Other files get torch's own default (``weights_only=True`` since torch 2.6), so torch's
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` still applies to them (``mim test ... --checkpoint``).

    Raises:
        FileNotFoundError: if ``filename`` does not exist.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location,
                      weights_only=False if is_trusted_checkpoint(filename) else None)
