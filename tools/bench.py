"""Compare the training cost of tuning methods side by side on one config, in one process.

    python tools/bench.py [CONFIG] --methods all --steps N --img-size 640x480 --out-dir DIR

Prints a table (trainable parameters, tuning share, training memory and its split, step time,
ratios to full fine-tuning) and writes
DIR/bench.json, DIR/bench.md and DIR/bench.png. The default CONFIG is the small E3VA Cascade Mask
R-CNN on the bundled real photos.
"""
import argparse
import datetime
import os
import os.path as osp
import platform
import shlex
import sys
from importlib import metadata

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

import mmsidetune  # noqa: F401  (registers the backbones)
from mmsidetune.tuners import METHOD_VARIANTS, TUNING_METHODS
from mmsidetune.cost import BenchError, format_table, run_bench, write_report
from mmsidetune.utils import parse_device

DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'e3va',
                          'cascade-mask-rcnn_e3va-swin-mini_fpn_40i_bundled-coco.py')


MIN_IMG_SIDE = 32  # the deepest Swin stage has stride 32: smaller images leave it no pixel


def _img_size(text):
    """'640x480' -> (640, 480) as (W, H); '512' -> (512, 512)."""
    parts = text.lower().split('x')
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise argparse.ArgumentTypeError(f'expected WxH or a single size, got {text!r}')
    if min(size) < MIN_IMG_SIDE:
        raise argparse.ArgumentTypeError(
            f'{text!r}: each side must be at least {MIN_IMG_SIDE} pixels (the backbone\'s '
            'output stride)')
    return size


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if value < low:
            raise argparse.ArgumentTypeError(f'must be at least {low}, got {value}')
        return value
    return parse




def _methods(text):
    """'all' or a comma-separated list of distinct method names."""
    methods = [m.strip() for m in text.split(',')]
    if text.strip() == 'all':
        return 'all'
    if not any(methods) or '' in methods:
        raise argparse.ArgumentTypeError(f'empty method name in {text!r}; give e.g. '
                                         "'full,e3va' or 'all'")
    dup = sorted({m for m in methods if methods.count(m) > 1})
    if dup:
        raise argparse.ArgumentTypeError(f'{dup} given more than once in {text!r}')
    return text


def _command(argv):
    """The command line as typed from the repository root (with ``OMP_NUM_THREADS`` if set)."""
    env = [f'OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}'] if 'OMP_NUM_THREADS' in os.environ \
        else []
    argv = sys.argv[1:] if argv is None else list(argv)
    return ' '.join(env + ['python', 'tools/bench.py'] + [shlex.quote(a) for a in argv])


def _versions():
    found = []
    for name in ('torch', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation'):
        try:
            found.append(f'{name} {metadata.version(name)}')
        except metadata.PackageNotFoundError:
            pass
    return ', '.join(found)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='mmdet/mmseg config')
    parser.add_argument('--methods', default='all', type=_methods,
                        help="comma-separated methods, or 'all' (the default): every method the "
                        "config's model supports (of "
                        f"{','.join(c.name for c in TUNING_METHODS.module_dict.values())}; "
                        'docs/backbones.md says which apply to which backbone); also E3VA with '
                        f"its memory options: {','.join(METHOD_VARIANTS)} (docs/e3va.md)")
    parser.add_argument('--steps', type=_int_at_least(1), default=5,
                        help='timed steps per method')
    parser.add_argument('--warmup', type=_int_at_least(0), default=2,
                        help='untimed steps per method first')
    parser.add_argument('--batch-size', type=_int_at_least(1), default=None,
                        help='override train_dataloader.batch_size')
    parser.add_argument('--img-size', type=_img_size, default=None, metavar='WxH',
                        help='train on W x H images (e.g. 640x480, or 512 for 512x512): a final '
                        'Resize(keep_ratio=False) is inserted before packing in the train pipeline')
    parser.add_argument('--amp', action='store_true',
                        help="mixed precision with mmengine's AmpOptimWrapper (CUDA only)")
    parser.add_argument('--device', type=parse_device,
                        default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', default='work_dirs/bench', help='where bench.* are written')
    parser.add_argument('--force', action='store_true',
                        help='replace bench.json/md/png already in --out-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in mmdet tools/train.py')
    args = parser.parse_args(argv)
    existing = [osp.join(args.out_dir, f'bench.{k}') for k in ('json', 'md', 'png')]
    existing = [p for p in existing if osp.exists(p)]
    if existing and not args.force:
        parser.error(f'{existing[0]} exists; pass --force to replace the report or choose '
                     'another --out-dir')
    return args


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        sys.exit(f'bench: config not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    # mmengine logs every parameter's init and optimizer option: keep the console to the
    # per-method lines, the progress bar and the table.
    MMLogger.get_instance('mmsidetune-bench', log_level='ERROR')
    try:
        rows = run_bench(cfg, methods, steps=args.steps, warmup=args.warmup, device=args.device,
                         batch_size=args.batch_size, seed=args.seed, img_size=args.img_size,
                         amp=args.amp)
    except BenchError as e:  # bad input; anything else keeps its traceback
        sys.exit(f'bench: {e}')
    device = args.device if args.device == 'cpu' else torch.cuda.get_device_name(args.device)
    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                command=_command(argv), config=osp.relpath(args.config), device=device,
                machine=f'{platform.machine()}, {os.cpu_count()} cores, '
                f'{torch.get_num_threads()} threads',
                versions=_versions(), steps=f'{args.warmup} warm-up + {args.steps} timed',
                batch_size=args.batch_size or cfg.train_dataloader.batch_size,
                img_size=('%dx%d (W x H, resized before packing)' % args.img_size
                          if args.img_size else 'as the config pipeline'),
                amp='AmpOptimWrapper (float16)' if args.amp else 'off (float32)',
                memory=('peak of live tensor bytes in one step after warm-up (' +
                        ('torch.profiler memory timeline' if args.device == 'cpu' else
                         'torch.cuda.max_memory_allocated on the model\'s device') +
                        '), split at the peak; docs/cost_accounting.md'))
    paths = write_report(rows, args.out_dir, meta)
    print(format_table(rows))
    print('\n'.join(f'bench: wrote {p}' for p in paths.values()))


if __name__ == '__main__':
    main()
