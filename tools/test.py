"""Evaluate a checkpoint on a config's test set with mmsidetune loaded.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options K=V ...]

CHECKPOINT is a full mmengine checkpoint, or an adapter-only file
(mmsidetune.utils.adapter_checkpoint): then the model's pretrained trunk is loaded from the
config's ``init_cfg`` and the adapters from the file, after checking they belong together. A
full checkpoint must fit the config's model: missing or unexpected keys (beyond BatchNorm's
``num_batches_tracked``) or shape mismatches end the tool with the file and the first keys named,
instead of mmengine's warning and a partly random model.
Several GPUs: ``tools/dist_test.sh CONFIG CHECKPOINT N`` or ``tools/slurm_test.sh``.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmsidetune  # noqa: F401  (registers the modules)
from mmsidetune.utils import (AdapterCheckpointError, CheckpointMismatchError,
                              CheckpointReadError, load_weights, setup_cpu_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, xxx=yyy format')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None) -> dict:
    """Run the test; returns the metrics."""
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'test: {what} not found: {path}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    try:
        setup_cpu_distributed(cfg)
    except ValueError as e:
        sys.exit(f'test: {e}')
    cfg.load_from = None  # loaded below, strictly, before the test loop starts
    runner = Runner.from_cfg(cfg)
    try:
        load_weights(runner.model, args.checkpoint, runner=runner)
    except (AdapterCheckpointError, CheckpointMismatchError, CheckpointReadError,
            FileNotFoundError) as e:
        sys.exit(f'test: {e}')
    return runner.test()


if __name__ == '__main__':
    main()
