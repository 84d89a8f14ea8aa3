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
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

import mmsidetune  # noqa: F401  (registers the modules)
from mmsidetune.utils import (AdapterCheckpointError, CheckpointMismatchError,
                              CheckpointReadError, check_checkpoint_fits, is_adapter_checkpoint,
                              load_adapter_checkpoint, read_checkpoint_file,
                              setup_cpu_distributed, trust_checkpoint)


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
    if is_adapter_checkpoint(args.checkpoint):
        cfg.load_from = None
        runner = Runner.from_cfg(cfg)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.init_weights()  # the pretrained trunk named by init_cfg
        try:
            load_adapter_checkpoint(model, args.checkpoint)
        except AdapterCheckpointError as e:
            sys.exit(f'test: {e}')
    else:
        cfg.load_from = args.checkpoint
        trust_checkpoint(args.checkpoint)  # the user named this file (mmsidetune.utils.checkpoint)
        runner = Runner.from_cfg(cfg)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        try:  # mapped, not read: mmengine's loader reads the tensors once, in runner.test()
            check_checkpoint_fits(model, read_checkpoint_file(args.checkpoint, 'cpu',
                                                              weights_only=False, mmap=True),
                                  args.checkpoint)
        except (CheckpointReadError, CheckpointMismatchError) as e:
            sys.exit(f'test: {e}')
    return runner.test()


if __name__ == '__main__':
    main()
