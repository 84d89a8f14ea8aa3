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
           'PARTIAL_SUFFIX', 'check_output_path']

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


def check_output_path(out: Union[str, Path], inputs=(), force: bool = False) -> None:
    """The overwrite rules of mmsidetune's tools (docs/scale.md, "What the tools never
    overwrite"), checked before any work is done.

    Args:
        out (str): File the tool will write.
        inputs (sequence of str): Files the tool reads.
        force (bool): The user passed ``--force``: an existing ``out`` may be replaced.

    Raises:
        ValueError: ``out`` is one of ``inputs`` (the same file, also through a link), even
            with ``force``: a tool never overwrites its own input.
        FileExistsError: ``out`` exists and ``force`` is False.
        IsADirectoryError: ``out`` is a folder.
    """
    out = str(out)
    for src in inputs:
        if src is None:
            continue
        same = osp.realpath(out) == osp.realpath(str(src)) or (
            osp.exists(out) and osp.exists(str(src)) and osp.samefile(out, str(src)))
        if same:
            raise ValueError(f'the output {out} is the input {src}: a tool never overwrites its '
                             'own input; write to another file')
    if osp.isdir(out):
        raise IsADirectoryError(f'the output {out} is a folder; name a file')
    if osp.exists(out) and not force:
        raise FileExistsError(f'the output {out} exists; pass --force to replace it')


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
