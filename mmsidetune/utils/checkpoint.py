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
import pickle
import zipfile
from typing import Optional, Set

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .dist import unwrap_model

__all__ = ['trust_checkpoint', 'is_trusted_checkpoint', 'CheckpointReadError',
           'read_checkpoint_file', 'CheckpointMismatchError', 'check_checkpoint_fits',
           'check_resume_fits', 'describe_tuning', 'OPTIONAL_KEY_SUFFIXES', 'load_weights']

# State-dict entries a checkpoint may lack or carry extra without being another model's:
# BatchNorm's step counter (absent from old files, unused by eval and by momentum-based BN).
OPTIONAL_KEY_SUFFIXES = ('num_batches_tracked', )

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


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be read; the message names the file and the cause."""


def read_checkpoint_file(filename: str, map_location=None, weights_only: Optional[bool] = None,
                         mmap: bool = False):
    """``torch.load`` whose errors name the file and say what is wrong with it.

    Args:
        filename (str): Local checkpoint path.
        map_location: As ``torch.load``.
        weights_only (bool, optional): As ``torch.load`` (None: torch's default, True since 2.6).
        mmap (bool): Map the file instead of reading it (zip checkpoints only; tensors are then
            read on access).

    Raises:
        FileNotFoundError: ``filename`` is empty (e.g. an empty ``last_checkpoint`` file) or
            does not exist.
        CheckpointReadError: a folder, an empty (0-byte) file, a damaged or truncated file, or a
            file that is not a PyTorch checkpoint.
        pickle.UnpicklingError: ``weights_only`` loading refused an object pickled in the file
            (torch's message, prefixed with the file name).
    """
    if not str(filename).strip():
        raise FileNotFoundError('empty checkpoint path (is work_dir/last_checkpoint empty? '
                                'delete it, or name the checkpoint with --resume PATH)')
    filename = osp.expanduser(str(filename))
    if osp.isdir(filename):
        raise CheckpointReadError(f'{filename} is a folder, not a checkpoint file: name a file '
                                  '(e.g. iter_N.pth in it); to resume the latest checkpoint of '
                                  'the work_dir, give --resume without a path')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    if osp.getsize(filename) == 0:
        raise CheckpointReadError(f'checkpoint {filename} is an empty file (0 bytes): a save '
                                  'that never finished, or a copy that failed')
    is_zip = zipfile.is_zipfile(filename)
    try:
        return torch.load(filename, map_location=map_location, weights_only=weights_only,
                          mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        if is_zip:  # a real torch file holding objects weights_only loading refuses
            raise pickle.UnpicklingError(f'checkpoint {filename}: {e}') from e
        raise CheckpointReadError(f'checkpoint {filename} is not a PyTorch checkpoint or is '
                                  f'damaged (cannot unpickle it: {str(e).splitlines()[0]})') from e
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as e:
        first = str(e).split('. ')[0] or type(e).__name__
        raise CheckpointReadError(f'checkpoint {filename} is damaged or truncated '
                                  f'({osp.getsize(filename)} bytes; torch: {first})') from e
    except Exception as e:  # noqa: BLE001
        if is_zip:
            raise
        # Not a zip file: torch unpickles the raw bytes, and bytes that are not a pickle fail
        # with whatever the pickle opcode they happen to hold raises (ValueError "unregistered
        # extension code", KeyError, UnicodeDecodeError, ...): all mean "not a checkpoint".
        raise CheckpointReadError(f'checkpoint {filename} is not a PyTorch checkpoint or is '
                                  f'damaged (cannot unpickle it: {type(e).__name__}: '
                                  f'{str(e).splitlines()[0] if str(e) else ""})') from e


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """mmengine's local loader, with ``weights_only=False`` for trusted files only.

    Named like mmengine's own loaders (``load_from_<backend>``): mmengine logs
    "Loads checkpoint by local backend" from the name.

    Other files get torch's own default (``weights_only=True`` since torch 2.6), so torch's
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` still applies to them (``mim test ... --checkpoint``).

    Raises:
        FileNotFoundError, CheckpointReadError, pickle.UnpicklingError: see
            :func:`read_checkpoint_file`.
    """
    return read_checkpoint_file(filename, map_location,
                                weights_only=False if is_trusted_checkpoint(filename) else None)


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into; the message names the file and
    the first mismatched keys."""


def _listing(keys, limit: int = 5) -> str:
    """The first ``limit`` of ``keys`` and how many more, for an error message."""
    return f'{keys[:limit]}{f" and {len(keys) - limit} more" if len(keys) > limit else ""}'


def key_mismatch(own: dict, state: dict, optional: tuple = ()):
    """``(missing, unexpected, shape mismatches)`` between a model's state dict ``own`` and a
    file's ``state``: keys of ``own`` absent from ``state``, keys of ``state`` absent from
    ``own`` (keys ending with a suffix in ``optional`` ignored), and ``'key: file (..) vs model
    (..)'`` lines for tensors present in both with different shapes."""
    missing = [k for k in own if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in own and not k.endswith(optional)]
    shapes = [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
              for k, v in state.items()
              if k in own and hasattr(v, 'shape') and tuple(v.shape) != tuple(own[k].shape)]
    return missing, unexpected, shapes


def check_checkpoint_fits(model, checkpoint: dict, path: str) -> None:
    """Refuse a full checkpoint whose weights are not this model's.

    Compares the keys and shapes of ``checkpoint['state_dict']`` (or the dict itself; a leading
    ``module.`` is ignored, as mmengine's loader does) with ``model.state_dict()``. Keys ending
    in :data:`OPTIONAL_KEY_SUFFIXES` are not compared. mmengine's ``load_checkpoint`` (what
    ``load_from`` and ``tools/test.py`` use) only warns about these mismatches and then
    evaluates a partly random model.

    Raises:
        CheckpointMismatchError: keys of the model missing from the file, keys of the file
            the model has no place for, or shape mismatches (the first five of each).
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f'checkpoint {path} holds no state dict '
                                      f'(a {type(checkpoint).__name__})')
    problems = _state_dict_problems(model, state)
    if problems:
        raise CheckpointMismatchError(
            f'checkpoint {path} does not fit {type(model).__name__}: ' + '; '.join(problems))


def _state_dict_problems(model, state: dict) -> list:
    """How ``state`` (a saved state dict, DDP's ``module.`` prefix allowed) differs from
    ``model.state_dict()`` (see :func:`state_dict_problems`)."""
    import re
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    return state_dict_problems(model.state_dict(), state, tuple(OPTIONAL_KEY_SUFFIXES))


def state_dict_problems(own: dict, state: dict, optional: tuple = (), limit: int = 5,
                        what: str = 'tensors') -> list:
    """How a file's ``state`` differs from the tensors ``own`` it should fill, in words: the
    ``own`` keys missing from the file, the file's keys with no place in ``own``, the shape
    mismatches (the first ``limit`` of each; keys ending in ``optional`` ignored; ``what``
    names the tensors, e.g. ``'trainable tensors'``). Empty when the file fits."""
    missing, unexpected, shapes = key_mismatch(own, state, optional)
    problems = []
    if missing:
        problems.append(f'{len(missing)} of the model\'s {len(own)} {what} missing from the '
                        f'file, first: {_listing(missing, limit)}')
    if unexpected:
        problems.append(f'{len(unexpected)} tensors of the file have no place in the model\'s '
                        f'{what}, first: {_listing(unexpected, limit)}')
    if shapes:
        problems.append(f'{len(shapes)} shape mismatches, first: {_listing(shapes, limit)}')
    return problems


def describe_tuning(model_cfg) -> str:
    """The tuning of a model config in a few words (``'TunedBackbone(mmdet.SwinTransformer,
    E3VA)'``), ``'unknown'`` when no tunable kind of model matches."""
    try:
        from ..tuners import find_model_tuning
        return find_model_tuning(model_cfg).describe(model_cfg)
    except Exception:  # noqa: BLE001  (a description only)
        return 'unknown'


def _optimizer_mismatch(optimizer, state: dict, names: dict) -> list:
    """Differences between an optimizer's param groups and a saved optimizer ``state``."""
    groups = state.get('param_groups', [])
    own = optimizer.param_groups
    if len(groups) != len(own):
        return [f'{len(groups)} parameter groups in the file, {len(own)} in this run']
    sizes = [(len(g['params']), len(o['params'])) for g, o in zip(groups, own)]
    if any(a != b for a, b in sizes):
        return [f'parameters per group: file {[a for a, _ in sizes]} vs this run '
                f'{[b for _, b in sizes]}']
    params = [p for g in own for p in g['params']]
    saved = state.get('state', {})
    problems = []
    for i, p in enumerate(params):
        for k, v in saved.get(i, {}).items():
            if hasattr(v, 'shape') and v.dim() and tuple(v.shape) != tuple(p.shape):
                problems.append(f'{names.get(p, f"param {i}")}: state {k} '
                                f'{tuple(v.shape)} vs parameter {tuple(p.shape)}')
                break
    return problems


def check_resume_fits(model, optim_wrapper, checkpoint: dict, path: str, run_cfg=None) -> None:
    """Refuse to resume a training checkpoint into a model it was not written from.

    Compares the checkpoint's state dict with ``model``'s (names and shapes, as
    :func:`check_checkpoint_fits`) and its optimizer state with ``optim_wrapper``'s optimizer
    (number of parameter groups, parameters per group, the shapes of per-parameter state such
    as AdamW's moments). mmengine's resume loads the weights non-strictly and then either fails
    with torch's "different number of parameter groups" or goes on with freshly initialised
    tensors carrying another model's optimizer state.

    Args:
        model: the (unwrapped) model of this run. optim_wrapper: its ``OptimWrapper`` or
            ``OptimWrapperDict`` (None: not compared). checkpoint: the loaded file.
        path: the file, for the message. run_cfg: this run's config (names both tunings).

    Raises:
        CheckpointMismatchError: naming both models' tuning, the first differing tensors and
            ``load_from`` as the way to start a new run from those weights.
    """
    problems = _state_dict_problems(model, checkpoint.get('state_dict', {}))
    saved_opt = checkpoint.get('optimizer')
    if not problems and optim_wrapper is not None and isinstance(saved_opt, dict):
        from mmengine.optim import OptimWrapperDict
        names = {p: n for n, p in model.named_parameters()}  # an optimizer holds tensors
        wrappers = (dict(optim_wrapper.items()) if isinstance(optim_wrapper, OptimWrapperDict)
                    else {'': optim_wrapper})
        for key, wrapper in wrappers.items():
            saved = saved_opt.get(key, {}) if key else saved_opt
            diff = _optimizer_mismatch(wrapper.optimizer, saved, names)
            if diff:
                problems.append(f'optimizer state{f" {key}" if key else ""}: '
                                f'{_listing(diff, 3)}')
    if not problems:
        return
    written = 'unknown'
    cfg_text = (checkpoint.get('meta') or {}).get('cfg')
    if cfg_text:
        try:
            from mmengine.config import Config
            written = describe_tuning(Config.fromstring(cfg_text, file_format='.py').model)
        except Exception:  # noqa: BLE001  (a description only)
            pass
    this = describe_tuning(run_cfg.model) if run_cfg is not None else type(model).__name__
    raise CheckpointMismatchError(
        f'cannot resume from {path}: it was written from another model ({written}) than this '
        f'run builds ({this}): ' + '; '.join(problems) + '. Resume only into the model a '
        'checkpoint was written from; to start a new run from its weights use '
        f'--cfg-options load_from={path} (without --resume) in a new work_dir')


#: What :func:`load_weights` accepts, by kind.
WEIGHT_KINDS = ('full', 'adapter-only')


def load_weights(model, path: str, kinds=WEIGHT_KINDS, runner=None) -> dict:
    """The one way this project's tools load a checkpoint the user names into a built model.

    * ``'adapter-only'`` (:mod:`mmsidetune.utils.adapter_checkpoint`): the pretrained trunk
      named by the config's ``init_cfg`` is loaded first (``model.init_weights()``), then the
      trainable tensors, checked against the trunk fingerprint the file records.
    * ``'full'``: an mmengine checkpoint (``{'state_dict': ...}``, DDP's ``module.`` prefix
      allowed) or a bare state dict. Checked strictly first (:func:`check_checkpoint_fits`:
      every key and shape of the model; BatchNorm's ``num_batches_tracked`` optional), then
      loaded with mmengine's loader. With ``runner``, the checked file is handed to the runner
      instead, as ``load_from`` in a config would: ``runner.test()`` / ``val()`` / ``train()``
      load it after the hooks' ``before_run`` (``EMAHook`` builds its averaged model there and
      swaps its weights in when the file is loaded).

    The file is trusted for full unpickling (:func:`trust_checkpoint`): the user named it.

    Args:
        model (nn.Module): the built model, wrapped or not (``runner.model``).
        path (str): a local checkpoint file.
        kinds (tuple[str]): the kinds the caller accepts (default both).
        runner (mmengine.runner.Runner, optional): the runner that owns ``model``.

    Returns:
        dict: ``kind`` (``'full'`` or ``'adapter-only'``) and ``meta`` (the file's ``meta``
        dict, empty when it has none).

    Raises:
        FileNotFoundError, CheckpointReadError: the file is missing, empty or damaged.
        CheckpointMismatchError: a full file whose keys or shapes differ from the model's, or
            a file of a kind not in ``kinds``.
        AdapterCheckpointError: an adapter-only file that does not fit the model or its trunk.
    """
    from mmengine.runner import load_checkpoint

    from .adapter_checkpoint import is_adapter_checkpoint, load_adapter_checkpoint
    model = unwrap_model(model)
    kind = 'adapter-only' if is_adapter_checkpoint(path) else 'full'
    if kind not in kinds:
        raise CheckpointMismatchError(f'{path} is an {kind} checkpoint; expected: '
                                      f'{" or ".join(kinds)}')
    if kind == 'adapter-only':
        model.init_weights()  # the pretrained trunk named by init_cfg
        return dict(kind=kind, meta=load_adapter_checkpoint(model, path))
    trust_checkpoint(path)
    ckpt = read_checkpoint_file(path, 'cpu', weights_only=False, mmap=True)  # keys and shapes
    check_checkpoint_fits(model, ckpt, path)
    if runner is not None:  # what Runner(load_from=path) stores; read by load_or_resume()
        runner._load_from = path
    else:  # strict already checked; mmengine strips DDP's module. prefix
        load_checkpoint(model, path, map_location='cpu', logger='silent')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return dict(kind=kind, meta=meta if isinstance(meta, dict) else {})
