"""Atomic file writes: a file is either its old complete version or its new complete version.

A process killed while writing (SIGKILL, out-of-memory, a preempted node) leaves at most a hidden
``.<name>.<random>.partial`` file next to the target; the target itself is only ever replaced by
``os.replace`` (atomic on POSIX within one file system) after the new bytes are flushed and
``fsync``-ed. :class:`AtomicLocalBackend` makes mmengine's checkpoint writes go this way: it is a
registered mmengine file backend, selected with ``backend_args=dict(backend='atomic_local')``
(as :class:`~mmsidetune.hooks.AtomicCheckpointHook` does by default).
"""
import glob
import io
import os
import os.path as osp
import uuid
from pathlib import Path
from typing import List, Union

import torch
from mmengine.fileio import LocalBackend, register_backend

__all__ = ['AtomicLocalBackend', 'atomic_write_bytes', 'atomic_torch_save', 'partial_files',
           'PARTIAL_SUFFIX']

PARTIAL_SUFFIX = '.partial'


def atomic_write_bytes(data: bytes, path: Union[str, Path]) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The folder is created if needed. On any error (or exception such as KeyboardInterrupt) the
    temporary file is removed and ``path`` keeps its previous content.
    """
    path = str(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}')
    try:
        with open(tmp, 'xb') as f:  # permissions as for any new file (umask), unlike mkstemp
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj, path: Union[str, Path]) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`atomic_write_bytes`)."""
    with io.BytesIO() as buf:
        torch.save(obj, buf)
        atomic_write_bytes(buf.getvalue(), path)


def partial_files(folder: str) -> List[str]:
    """Leftover temporary files of killed writes in ``folder`` (delete them when no write runs)."""
    return sorted(glob.glob(osp.join(glob.escape(folder), '.*' + PARTIAL_SUFFIX)))


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` are atomic.

    Use it wherever mmengine takes ``backend_args``::

        default_hooks = dict(checkpoint=dict(type='CheckpointHook',
                                             backend_args=dict(backend='atomic_local')))
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)
