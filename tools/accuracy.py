"""Accuracy per gigabyte: train every tuning method from pretrained weights, score it held out.

    python tools/accuracy.py [CONFIG] [--quick] [--methods all|m1,m2] [--out-dir DIR]
        [--iters N] [--lrs 'full=1e-6,1e-5,1e-4;*=1e-4,1e-3,1e-2'] [--device cuda]
    python tools/accuracy.py --update-doc docs/accuracy.md

For every method that applies to the config's backbone (the method registry decides, as in
tools/bench.py) plus e3va-bf16-taps, e3va-recompute and e3va-lowmem: the training cost (bench's
memory meter, one profiled step; median step time), a learning-rate sweep chosen on the dev split,
and the chosen rate's mIoU / aAcc / per-class IoU on the validation split. Writes
DIR/accuracy.json after every method (a re-run with the same DIR and options keeps the rows
already there and runs only the missing or failed methods), then DIR/accuracy.md and
DIR/accuracy.png. docs/accuracy.md explains the task and the numbers; its tables are rewritten
from the JSON files it names by ``--update-doc`` (no training).

Presets (168 x 168 images, batch 4):
  default  --iters 200 --val-interval 50, three learning rates per method (600 iterations)
  --quick  --iters 80 --val-interval 40, one learning rate per method (the middle of each
           default sweep, i.e. the papers' recipe; not a measured choice)
"""
import argparse
import datetime
import os.path as osp
import platform
import sys

import torch
from mmengine.config import Config, DictAction

import mmsidetune  # noqa: F401  (registers modules)
from mmsidetune.cost import BenchError
from mmsidetune.cost.accuracy import (DEFAULT_LRS, format_accuracy_table, load_results,
                                      run_accuracy, update_doc_tables,
                                      write_accuracy_report)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'accuracy',
                          'fcn_e3va-dinov2-s-p14_1k_fmnist-composite-168x168.py')
PRESETS = dict(default=dict(iters=200, val_interval=50, lrs=DEFAULT_LRS),
               quick=dict(iters=80, val_interval=40,
                          lrs={k: (v[len(v) // 2], ) for k, v in DEFAULT_LRS.items()}))


def _lrs(text):
    """'full=1e-6,1e-5;*=1e-4,1e-3' -> {'full': [1e-6, 1e-5], '*': [1e-4, 1e-3]}."""
    out = {}
    for part in text.split(';'):
        key, sep, values = part.partition('=')
        try:
            vals = [float(v) for v in values.split(',')]
        except ValueError:
            vals = []
        if not sep or not key.strip() or not vals or min(vals) <= 0:
            raise argparse.ArgumentTypeError(f"expected 'method=lr,lr;*=lr,...', got {part!r}")
        out[key.strip()] = vals
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--quick', action='store_true',
                        help='80 iterations at one learning rate per method (docs/accuracy.md)')
    parser.add_argument('--methods', default='all',
                        help="comma-separated methods, or 'all' (every registered method for the "
                        'backbone plus e3va-bf16-taps, e3va-recompute, e3va-lowmem)')
    parser.add_argument('--iters', type=int, default=None, help='iterations per (method, lr)')
    parser.add_argument('--val-interval', type=int, default=None, help='dev evaluation period')
    parser.add_argument('--lrs', type=_lrs, default=None,
                        help="learning-rate sweeps, e.g. 'full=1e-6,1e-5,1e-4;*=1e-4,1e-3,1e-2' "
                        "('*' for every other method; a variant falls back to its method)")
    parser.add_argument('--cost-steps', type=int, default=2, help='timed bench steps per method')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', default=None,
                        help='default: work_dirs/accuracy[_quick]; an existing report there is '
                        'resumed when its settings match')
    parser.add_argument('--force', action='store_true',
                        help='discard an existing report with other settings in --out-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--update-doc', metavar='PAGE', default=None,
                        help='only rewrite the tables between "<!-- accuracy-table PATH -->" and '
                        '"<!-- /accuracy-table -->" in the markdown PAGE from those accuracy.json '
                        'files, then exit (no training)')
    args = parser.parse_args(argv)
    preset = PRESETS['quick' if args.quick else 'default']
    args.iters = args.iters or preset['iters']
    args.val_interval = args.val_interval or min(preset['val_interval'], args.iters)
    args.lrs = args.lrs or preset['lrs']
    args.out_dir = args.out_dir or ('work_dirs/accuracy_quick' if args.quick else
                                    'work_dirs/accuracy')
    if args.iters < 1 or args.val_interval < 1:
        parser.error('--iters and --val-interval must be at least 1')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.update_doc:
        try:
            used = update_doc_tables(args.update_doc)
        except (BenchError, OSError) as e:
            sys.exit(f'accuracy: {e}')
        print(f'accuracy: rewrote {len(used)} tables in {args.update_doc} from '
              + ', '.join(osp.relpath(p) for p in used))
        return
    if not osp.isfile(args.config):
        sys.exit(f'accuracy: config not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    settings = dict(config=osp.relpath(args.config, ROOT) if args.config.startswith(ROOT)
                    else args.config, lrs={k: list(v) for k, v in args.lrs.items()},
                    batch_size=cfg.train_dataloader.batch_size,
                    cfg_options=args.cfg_options or None)
    device = args.device if args.device == 'cpu' else torch.cuda.get_device_name(args.device)
    meta = dict(config=settings['config'], device=device,
                machine=f'{platform.machine()}, {torch.get_num_threads()} threads',
                torch=torch.__version__, iters=args.iters, val_interval=args.val_interval,
                batch_size=settings['batch_size'], seed=args.seed,
                lrs='; '.join(f'{k}: {v}' for k, v in settings['lrs'].items()),
                memory='peak of live tensor bytes in one training step (bench meter, '
                'docs/cost_accounting.md)',
                selection='lr with the best final dev-split mIoU; scored once on the val split')

    def on_row(row, rows):
        meta['date'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
        write_accuracy_report(rows, args.out_dir, meta)

    try:
        rows = run_accuracy(cfg, methods, args.out_dir, args.iters, args.val_interval,
                            lrs=args.lrs, device=args.device, seed=args.seed,
                            cost_steps=args.cost_steps, settings=settings, force=args.force,
                            on_row=on_row)
    except BenchError as e:
        sys.exit(f'accuracy: {e}')
    if not any(r.get('status') != 'ok' for r in rows):
        on_row(None, rows)
    print(format_accuracy_table(rows))
    print(f'accuracy: wrote {osp.join(args.out_dir, "accuracy.json")} (.md, .png)')
    failed = [r['method'] for r in load_results(osp.join(args.out_dir, 'accuracy.json'))['rows']
              if r.get('status') != 'ok']
    if failed:
        sys.exit(f'accuracy: failed: {failed} (see accuracy.json; re-run to retry them)')


if __name__ == '__main__':
    main()
