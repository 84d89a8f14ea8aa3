"""Train a model from an mmdet or mmseg config with mmsidetune loaded.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]] [--cfg-options K=V ...]

The same as mmdet's / mmseg's ``tools/train.py`` (``mim train mmdet CONFIG`` runs mmdet's, which
loads mmsidetune through the config's ``custom_imports``); this one also works for configs without
``custom_imports`` because it imports mmsidetune itself. For several GPUs use
``tools/dist_train.sh CONFIG N`` (torchrun + ``--launcher pytorch``) or ``tools/slurm_train.sh``;
on machines without CUDA add ``--cfg-options env_cfg.dist_cfg.backend=gloo`` (docs/scale.md).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmsidetune  # noqa: F401  (registers the modules)
from mmsidetune.utils import (CheckpointReadError, WorkDirInUseError, WorkDirLock,
                              is_adapter_checkpoint, read_checkpoint_file, setup_cpu_distributed,
                              trust_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in work_dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, xxx=yyy format')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args) -> Config:
    """Load the config and apply the command line, as mmdet's tools/train.py does."""
    if not osp.isfile(args.config):
        sys.exit(f'train: config not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if getattr(args, 'amp', False):
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    resume = getattr(args, 'resume', None)
    # Checkpoints the user resumes from are trusted for full unpickling (mmengine's own
    # checkpoints hold pickled objects that torch >= 2.6 refuses by default).
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
        if osp.isdir(cfg.work_dir):
            trust_checkpoint(cfg.work_dir)
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
        trust_checkpoint(resume)
    return cfg


def resume_source(cfg: Config):
    """The checkpoint a ``--resume`` run will load (None: nothing to resume, a fresh start).

    Raises:
        ValueError: an empty ``work_dir/last_checkpoint``, or one naming a missing file.
    """
    if not cfg.get('resume'):
        return None
    if cfg.get('load_from'):
        return cfg.load_from
    marker = osp.join(cfg.work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None  # mmengine starts from scratch (and says so)
    with open(marker) as f:
        path = f.read().strip()
    if not path:
        raise ValueError(f'{marker} is empty (a killed save?); resume from a checkpoint by name: '
                         f'--resume {cfg.work_dir}/iter_N.pth')
    if not osp.isfile(path):
        raise ValueError(f'{marker} names {path}, which does not exist; resume from a '
                         'checkpoint by name: --resume PATH')
    return path


def check_resume_source(path: str) -> None:
    """Refuse a resume source that is not a training checkpoint, before the run starts.

    Raises:
        ValueError: an adapter-only file, or a file without ``meta.iter`` / ``meta.epoch`` and
            optimizer state (e.g. a pretrained or converted weights file).
        CheckpointReadError, FileNotFoundError: an unreadable file (named).
    """
    ckpt = read_checkpoint_file(path, 'cpu', weights_only=False, mmap=True)
    if is_adapter_checkpoint(ckpt):
        raise ValueError(f'{path} is an adapter-only checkpoint (trainable tensors only, no '
                         'optimizer state or iteration): resume from the full iter_N.pth / '
                         'epoch_N.pth next to it, or test it with tools/test.py')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not {'iter', 'epoch'} <= set(meta) \
            or 'optimizer' not in ckpt:
        raise ValueError(f'{path} is not a training checkpoint (no meta.iter / meta.epoch and '
                         'optimizer state): to start a new run from its weights use '
                         f'--cfg-options load_from={path} instead of --resume')


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    try:
        source = resume_source(cfg)
        if source is not None:
            check_resume_source(source)
    except (ValueError, CheckpointReadError, FileNotFoundError) as e:
        sys.exit(f'train: cannot resume: {e}')
    try:
        setup_cpu_distributed(cfg)
    except ValueError as e:
        sys.exit(f'train: {e}')
    # one run per work_dir (rank 0 of a distributed run holds it for all ranks; the process
    # group does not exist yet: the rank comes from the launcher's environment)
    rank = next((os.environ[k] for k in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK')
                 if k in os.environ), '0') if args.launcher != 'none' else '0'
    lock = WorkDirLock(cfg.work_dir) if rank == '0' else None
    try:
        if lock is not None:
            lock.acquire()
    except WorkDirInUseError as e:
        sys.exit(f'train: {e}')
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    finally:
        if lock is not None:
            lock.release()


if __name__ == '__main__':
    main()
