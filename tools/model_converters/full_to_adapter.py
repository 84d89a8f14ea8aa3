"""Convert a full mmengine checkpoint of a tuned model into an adapter-only file.

    python tools/model_converters/full_to_adapter.py CONFIG FULL_CKPT OUT [--force] \
        [--cfg-options K=V ...]

The model is built from CONFIG, FULL_CKPT is loaded into it (strict: every key must fit), and
OUT receives only the trainable tensors plus the trunk fingerprint and the pretrained trunk's
name (mmsidetune.utils.adapter_checkpoint). When the pretrained trunk named by the config's
``init_cfg`` is on disk, the converter also checks that FULL_CKPT's trunk *is* that trunk: an
adapter-only file is useless if the trunk changed in training (full fine-tuning) or the config
names another trunk. FULL_CKPT is fully unpickled (mmengine's checkpoints need it): convert only
your own files. Prints the sizes; exits non-zero with the reason on any mismatch. OUT is never
FULL_CKPT (nor the config); an existing OUT is replaced only with ``--force``, atomically.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope

import mmsidetune  # noqa: F401  (registers the modules)
from mmsidetune.utils import (CheckpointMismatchError, CheckpointReadError, check_output_path,
                              load_weights, pretrained_sources, save_adapter_checkpoint,
                              trunk_fingerprint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='full mmengine checkpoint (e.g. work_dirs/x/iter_N.pth)')
    parser.add_argument('out', help='adapter-only file to write')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, xxx=yyy format')
    return parser.parse_args(argv)


def _mb(n: int) -> str:
    return f'{n / 2**20:.2f} MB'


def main(argv=None) -> dict:
    """Run the conversion; returns the written metadata."""
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'full_to_adapter: {what} not found: {path}')
    try:
        check_output_path(args.out, (args.config, args.checkpoint), args.force)
    except (ValueError, OSError) as e:
        sys.exit(f'full_to_adapter: {e}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)

    pretrained = pretrained_sources(model)
    local = {k: v for k, v in pretrained.items() if '://' not in v}
    check = bool(local) and all(osp.isfile(v) for v in local.values())
    expected = None
    if check:
        model.init_weights()
        expected = trunk_fingerprint(model)['trunk_sha256']

    try:
        load_weights(model, args.checkpoint, kinds=('full', ))
    except (CheckpointReadError, FileNotFoundError) as e:
        sys.exit(f'full_to_adapter: {e}')
    except CheckpointMismatchError as e:
        sys.exit(f'full_to_adapter: {args.checkpoint} does not fit the model of '
                 f'{args.config}: {e}')
    if check and trunk_fingerprint(model)['trunk_sha256'] != expected:
        sys.exit(f'full_to_adapter: the frozen trunk in {args.checkpoint} differs from the '
                 f'pretrained trunk {local}: an adapter-only file would not reproduce this '
                 'model (was the trunk trained, or does the config name another trunk?)')
    meta = save_adapter_checkpoint(model, args.out,
                                   extra_meta=dict(source_checkpoint=osp.abspath(args.checkpoint)))
    full_bytes = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    print(f'{meta["model_type"]} ({meta["tuning_methods"] or "no tuned backbone"}): '
          f'{len(meta["params"])} trainable tensors, {_mb(os.path.getsize(args.out))} written to '
          f'{args.out} (model weights {_mb(full_bytes)}, checkpoint '
          f'{_mb(os.path.getsize(args.checkpoint))})')
    print(f'trunk: {pretrained or "not named in init_cfg"}; '
          + ('checked equal to the checkpoint\'s trunk' if check else
             'pretrained file not on disk: trunk equality not checked'))
    return meta


if __name__ == '__main__':
    main()
