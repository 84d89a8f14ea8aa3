"""One run per ``work_dir``: a lock file naming the owner's pid and host.

Two trainings into one ``work_dir`` share its log folder and overwrite each other's
``iter_N.pth`` and ``last_checkpoint``; both exit 0. ``tools/train.py`` takes the lock before the
Runner is built and removes it when the process ends (docs/scale.md, "One run per work_dir").
"""
import json
import os
import os.path as osp
import socket
import time

__all__ = ['WorkDirLock', 'WorkDirInUseError', 'LOCK_NAME']

#: The lock file's name inside the work_dir.
LOCK_NAME = '.mmsidetune_run.lock'


class WorkDirInUseError(RuntimeError):
    """Another live run owns the work_dir; the message names the folder, pid and host."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


class WorkDirLock:
    """Own ``work_dir`` for the life of this process (a context manager).

    The lock file ``work_dir/.mmsidetune_run.lock`` is created atomically (``O_EXCL``) and holds
    ``{"pid", "host", "started"}``. A lock of this host whose pid is no longer running (a killed
    run) is stale: it is replaced, with a log line. A lock of another host cannot be checked and
    is refused; delete the file if that run is over.

    Args:
        work_dir (str): the run's folder (created if missing).

    Raises:
        WorkDirInUseError: in ``acquire`` / ``__enter__``, when a live run owns ``work_dir``.
    """

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._owned = False

    def _read(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(self.work_dir, exist_ok=True)
        me = dict(pid=os.getpid(), host=socket.gethostname(),
                  started=time.strftime('%Y-%m-%d %H:%M:%S'))
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._read()
                if owner is None:  # being written by its owner right now, or damaged
                    time.sleep(0.2)
                    owner = self._read()
                if owner is not None and owner.get('host') != me['host']:
                    raise WorkDirInUseError(
                        f'work_dir {self.work_dir} is in use by pid {owner.get("pid")} on host '
                        f'{owner.get("host")} (since {owner.get("started")}); use another '
                        f'--work-dir, or delete {self.path} if that run is over')
                if owner is not None and _alive(int(owner.get('pid', -1))):
                    raise WorkDirInUseError(
                        f'work_dir {self.work_dir} is in use by pid {owner["pid"]} on this host '
                        f'({owner["host"]}, since {owner.get("started")}); use another '
                        '--work-dir, or wait until that run ends')
                from mmengine.logging import print_log
                print_log(f'{self.path}: stale lock of a run that is gone ({owner}); taking '
                          'over the work_dir', logger='current')
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, 'w') as f:
                json.dump(me, f)
            self._owned = True
            return self
        raise WorkDirInUseError(f'work_dir {self.work_dir}: cannot take the lock {self.path}')

    def release(self) -> None:
        if self._owned:
            owner = self._read()
            if owner is None or owner.get('pid') == os.getpid():
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
            self._owned = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
