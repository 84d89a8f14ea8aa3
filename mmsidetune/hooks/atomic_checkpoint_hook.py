"""A CheckpointHook whose checkpoints survive a kill during save, and that can write adapter-only
files and trust the run's own checkpoints on resume."""
import logging
import os
import os.path as osp
from contextlib import contextmanager
from typing import List, Tuple

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import MMLogger
from mmengine.registry import HOOKS

from ..utils.adapter_checkpoint import is_adapter_checkpoint, save_adapter_checkpoint
from ..utils.atomic_io import partial_files
from ..utils.checkpoint import trust_checkpoint
from ..utils.dist import unwrap_model
from .check_invalid_loss_hook import NonFiniteError, non_finite_tensors

__all__ = ['AtomicCheckpointHook']

#: mmengine 0.10.7's ``CheckpointHook.before_train`` and ``Runner.save_checkpoint`` build a
#: ``FileClient`` they never use when ``file_client_args`` is None ("to avoid breaking backward
#: compatibility"); the client logs these deprecation lines at the start of training and at the
#: first save: the exact messages this hook drops there (docs/cost_accounting.md, Quiet logs).
_UNUSED_FILE_CLIENT_LINES = (
    '"FileClient" will be deprecated in future. Please use io functions in '
    'https://mmengine.readthedocs.io/en/latest/api/fileio.html#file-io',
    '"HardDiskBackend" is the alias of "LocalBackend" and the former will be deprecated in '
    'future.')


class _DropLines(logging.Filter):
    def __init__(self, lines):
        super().__init__()
        self.lines = set(lines)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.lines


@contextmanager
def _unused_file_client_quiet(file_client_args):
    """Drop :data:`_UNUSED_FILE_CLIENT_LINES` from the current mmengine logger inside the block
    (only when no ``file_client_args`` were given: then the client is really unused)."""
    logger = MMLogger.get_current_instance()
    drop = _DropLines(_UNUSED_FILE_CLIENT_LINES if file_client_args is None else ())
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


class _DeferredRemovals:
    """File-backend proxy that records ``remove`` / ``rmtree`` calls instead of running them."""

    def __init__(self, backend, calls: List[Tuple[str, str]]):
        self._backend, self._calls = backend, calls

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, path):
        self._calls.append(('remove', path))

    def rmtree(self, path):
        self._calls.append(('rmtree', path))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that never loses the last good checkpoint.

    What mmengine 0.10.7's ``CheckpointHook`` does, and what this subclass changes:

    * It writes ``iter_N.pth`` in place (``open(path, 'wb')``): a kill during the write leaves a
      truncated file under the real name (and overwrites a good file of the same name). Here the
      write goes through the registered ``atomic_local`` file backend
      (:class:`~mmsidetune.utils.atomic_io.AtomicLocalBackend`): a hidden ``.partial`` file,
      ``fsync``, then ``os.replace``.
    * With ``max_keep_ckpts`` (and for ``save_best``) it deletes the oldest checkpoint *before*
      writing the new one, so a kill during the save can leave no checkpoint at all. Here
      deletions run only after the new file is complete.
    * ``last_checkpoint`` is written by mmengine after the checkpoint file is complete, so it
      never names a partial file (unchanged).

    * It saves whatever the model holds. Here a model with a NaN / inf weight or buffer is not
      saved: :class:`~mmsidetune.hooks.NonFiniteError` names the checkpoint and the tensors, and
      no older checkpoint is deleted (the first line of defence is
      :class:`~mmsidetune.hooks.FiniteLossHook`, which stops the run before such a step).

    Leftover ``.partial`` files of a killed save are deleted in ``before_train``.

    Args:
        save_adapter (bool): Also write ``adapter_<name>`` (e.g. ``adapter_iter_40.pth``) next to
            every checkpoint: the trainable tensors only, see
            :mod:`mmsidetune.utils.adapter_checkpoint`. Defaults to False.
        trust_loaded (bool): Let the checkpoint this run loads be fully unpickled (mmengine's
            own checkpoints need it under torch >= 2.6, see :mod:`mmsidetune.utils.checkpoint`):
            the file named by ``load_from`` / ``resume`` (``--resume CKPT``,
            ``mim test ... --checkpoint CKPT``, a config's ``load_from``), or, for auto-resume
            (``--resume`` without a path), the files under the run's ``work_dir``. No other file
            is trusted. Defaults to True.
        *args, **kwargs: Every argument of ``mmengine.hooks.CheckpointHook``. Without
            ``backend_args`` and ``file_client_args``, and with a local ``out_dir``,
            ``backend_args`` defaults to ``dict(backend='atomic_local')``.

    Raises:
        ValueError: in ``before_run``, when the run resumes (``--resume CKPT``, also through
            ``mim train``) from an adapter-only file, which holds no optimizer state or
            iteration (mmengine would fail with ``KeyError: 'epoch'``).
        NonFiniteError: when a checkpoint would hold NaN / inf weights.

    Use it from a config::

        default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1000,
                                             max_keep_ckpts=3, save_adapter=True))
    """

    def __init__(self, *args, save_adapter: bool = False, trust_loaded: bool = True, **kwargs):
        out_dir = kwargs.get('out_dir', args[4] if len(args) > 4 else None)
        local = out_dir is None or '://' not in str(out_dir)
        if local and kwargs.get('backend_args') is None and kwargs.get('file_client_args') is None:
            kwargs['backend_args'] = dict(backend='atomic_local')
        super().__init__(*args, **kwargs)
        self.save_adapter = save_adapter
        self.trust_loaded = trust_loaded

    def before_run(self, runner) -> None:
        # mmengine calls before_run before Runner.load_or_resume() in train(), val() and test();
        # the Runner keeps the source in _load_from / _resume (cfg.load_from / cfg.resume).
        load_from = getattr(runner, '_load_from', None)
        if getattr(runner, '_resume', False) and load_from and is_adapter_checkpoint(load_from):
            raise ValueError(f'cannot resume from {load_from}: it is an adapter-only checkpoint '
                             '(trainable tensors only, no optimizer state or iteration); resume '
                             'from the full iter_N.pth / epoch_N.pth next to it')
        if not self.trust_loaded:
            return
        if load_from is not None:
            trust_checkpoint(load_from)
        elif getattr(runner, '_resume', False):
            trust_checkpoint(runner.work_dir)

    def before_train(self, runner) -> None:
        with _unused_file_client_quiet(self.file_client_args):
            super().before_train(runner)
        if is_main_process() and osp.isdir(str(self.out_dir)):
            for path in partial_files(str(self.out_dir)):
                runner.logger.warning(f'removing the partial file of a killed save: {path}')
                os.remove(path)

    @contextmanager
    def _removals_after_save(self):
        """Run the parent's checkpoint deletions only once the new checkpoint is complete."""
        backend, calls = self.file_backend, []
        self.file_backend = _DeferredRemovals(backend, calls)
        try:
            yield
        finally:
            self.file_backend = backend
        for kind, path in calls:  # not reached when the save raised: old files stay
            getattr(backend, kind)(path)
            adapter = self._adapter_path(path)
            if backend.isfile(adapter):
                backend.remove(adapter)

    @staticmethod
    def _adapter_path(ckpt_path: str) -> str:
        folder, name = osp.split(ckpt_path)
        return osp.join(folder, 'adapter_' + name)

    def _refuse_non_finite(self, runner, what: str) -> None:
        bad = non_finite_tensors(unwrap_model(runner.model).state_dict())
        if bad:
            raise NonFiniteError(
                f'not saving {what}: {len(bad)} model tensors hold '
                f'NaN or inf, first: {bad[:5]}; the previous checkpoints are kept')

    def _save_checkpoint_with_step(self, runner, step, meta):
        self._refuse_non_finite(runner, f'the checkpoint of iteration/epoch {step}')
        with self._removals_after_save(), _unused_file_client_quiet(self.file_client_args):
            super()._save_checkpoint_with_step(runner, step, meta)
            if self.save_adapter and is_main_process():
                path = self._adapter_path(self.last_ckpt)
                save_adapter_checkpoint(runner.model, path, extra_meta=dict(meta))
                runner.logger.info(f'adapter-only checkpoint saved to {path}')

    def _save_best_checkpoint(self, runner, metrics) -> None:
        self._refuse_non_finite(runner, 'the best checkpoint')
        with self._removals_after_save(), _unused_file_client_quiet(self.file_client_args):
            super()._save_best_checkpoint(runner, metrics)
