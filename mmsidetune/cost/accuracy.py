"""Accuracy per gigabyte: train every tuning method the same way and score it on held-out data.

Used by ``tools/accuracy.py`` (docs/accuracy.md). For each method the config is switched by the
model's :class:`~mmsidetune.tuners.ModelTuning` (as in :mod:`.bench`: the methods come from the
registry, so a newly registered method gets a row with no change here). Per method:

1. cost: one :func:`~mmsidetune.cost.run_bench` row (trainable parameters, tuning share, the
   training memory of one profiled step, the median step time);
2. a learning-rate sweep: for each ``lr`` an mmengine ``Runner`` trains from the config's
   pretrained weights with the same data, schedule and seed, validating on the *dev* split
   (``val_dataloader``) every ``val_interval`` iterations (the curve is kept);
3. the ``lr`` with the best final dev mIoU is scored once on the *validation* split
   (``test_dataloader``): mIoU, aAcc, mAcc, per-class IoU and the confusion matrix
   (:class:`~mmsidetune.evaluation.ConfusionIoUMetric`).

Rows are written to ``accuracy.json`` after every method (atomically); a method already there
with ``status='ok'`` is kept and skipped, a failed method is recorded with its error and the
others go on. :func:`update_doc_tables` rewrites the tables of a markdown page (docs/accuracy.md)
from the ``accuracy.json`` files it names, so a re-run replaces them.
"""
import copy
import json
import math
import os
import os.path as osp
import re
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..utils.atomic_io import atomic_write_bytes
from .bench import BenchError, apply_method, known_methods, run_bench

__all__ = ['DEFAULT_LRS', 'lr_grid', 'run_accuracy', 'load_results', 'format_accuracy_table',
           'write_accuracy_report', 'update_doc_tables', 'EXTRA_METHODS']

#: The E3VA variants measured besides every registered method (docs/e3va.md, "Memory options").
EXTRA_METHODS = ('e3va-bf16-taps', 'e3va-recompute', 'e3va-lowmem')

#: Learning-rate sweeps (AdamW, whole model at one rate), a decade apart around each recipe:
#: full fine-tuning's best DINOv2 rates are small (1e-5); methods that train a few new layers and
#: the head use larger ones (the PETL papers: 1e-4 to 1e-3). Methods not listed take ``'*'``.
DEFAULT_LRS: Dict[str, Sequence[float]] = {
    'full': (1e-6, 1e-5, 1e-4),
    '*': (1e-4, 1e-3, 1e-2),
}


def lr_grid(method: str, lrs: Optional[Dict[str, Sequence[float]]] = None) -> List[float]:
    """The sweep for ``method``: ``lrs[method]``, else ``lrs['*']`` (``DEFAULT_LRS`` when
    ``lrs`` is None); a variant (``'e3va-lowmem'``) falls back to its method's name first."""
    lrs = DEFAULT_LRS if lrs is None else lrs
    base = method.split('-')[0]
    for key in (method, base, '*'):
        if key in lrs:
            return [float(v) for v in lrs[key]]
    raise BenchError(f'no learning rates for {method!r} (nor a "*" default)')


@HOOKS.register_module()
class CurveHook(Hook):
    """Keeps ``(iteration, metrics)`` after every validation and prints a line every
    ``interval`` training iterations (loss, seconds so far); used by the accuracy bench."""

    priority = 'LOW'

    def __init__(self, interval: int = 50, prefix: str = ''):
        self.interval, self.prefix = interval, prefix
        self.curve: List[dict] = []
        self.losses: List[float] = []
        self._t0 = None

    def before_train(self, runner) -> None:
        self._t0 = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        loss = float(outputs['loss'].detach()) if outputs and 'loss' in outputs else float('nan')
        self.losses.append(loss)
        it = runner.iter + 1
        if self.interval and (it % self.interval == 0 or it == runner.max_iters):
            print(f'{self.prefix} iter {it}/{runner.max_iters} loss {loss:.4f} '
                  f'{time.perf_counter() - self._t0:.0f} s', flush=True)

    def after_val_epoch(self, runner, metrics=None) -> None:
        metrics = dict(metrics or {})
        self.curve.append(_clean(dict(iter=runner.iter, mIoU=metrics.get('mIoU'),
                                      aAcc=metrics.get('aAcc'))))
        print(f"{self.prefix} iter {runner.iter} dev mIoU {_pct(self.curve[-1]['mIoU'])}",
              flush=True)


def _train_one(cfg: Config, method: str, lr: float, iters: int, val_interval: int,
               work_dir: str, seed: int, device: str, log_interval: int):
    """Train ``cfg`` (already switched to ``method``) at ``lr``; return ``(runner, hook)``."""
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = val_interval
    for sched in cfg.get('param_scheduler') or []:  # keep the schedule's shape at any length
        if sched.get('end', 0) > iters or sched.get('type') == 'CosineAnnealingLR':
            sched['end'] = iters
        if sched.get('begin', 0) >= iters:
            sched['begin'] = 0
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{method}_lr{lr:g}_{time.strftime("%Y%m%d_%H%M%S")}_{os.getpid()}'
    cfg.log_level = 'WARNING'
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=log_interval,
                                    log_metric_by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=-1,
                                        save_last=False)
    cfg.default_hooks.pop('visualization', None)
    cfg.env_cfg = dict(cfg.get('env_cfg') or {}, dist_cfg=dict(backend='gloo'))
    if device != 'cpu':
        cfg.env_cfg['cudnn_benchmark'] = False
    runner = Runner.from_cfg(cfg)
    hook = CurveHook(interval=log_interval, prefix=f'accuracy: {method:>14} lr {lr:g}')
    runner.register_hook(hook)
    runner.train()
    return runner, hook


def _test(runner) -> dict:
    metrics = runner.test()
    metric = runner.test_evaluator.metrics[0]
    classes = list(runner.test_dataloader.dataset.metainfo['classes'])
    return _clean(dict(mIoU=metrics.get('mIoU'), aAcc=metrics.get('aAcc'), mAcc=metrics.get('mAcc'),
                per_class_iou={c: metrics.get(f'IoU.{c}') for c in classes},
                confusion=getattr(metric, 'confusion', None).tolist()
                if getattr(metric, 'confusion', None) is not None else None))


def _clean(v):
    """JSON-safe: numpy scalars -> Python, NaN -> None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def load_results(path: str) -> dict:
    """``{'settings': ..., 'rows': [...]}`` of an ``accuracy.json`` (empty when absent)."""
    if not osp.exists(path):
        return dict(settings=None, rows=[])
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or 'rows' not in data:
        raise BenchError(f'{path} is not an accuracy report (no "rows")')
    return data


def run_accuracy(cfg: Config,
                 methods: Sequence[str],
                 out_dir: str,
                 iters: int,
                 val_interval: int,
                 lrs: Optional[Dict[str, Sequence[float]]] = None,
                 device: str = 'cpu',
                 seed: int = 0,
                 cost_steps: int = 2,
                 settings: Optional[dict] = None,
                 force: bool = False,
                 on_row: Optional[Callable[[dict, List[dict]], None]] = None) -> List[dict]:
    """Train and score each of ``methods`` (see the module docstring); return all rows.

    Args:
        cfg: an mmseg config with a tunable backbone, ``train_dataloader`` (train split),
            ``val_dataloader`` (dev split: learning-rate choice), ``test_dataloader`` (the
            validation split: reported), ``val_evaluator``/``test_evaluator``
            (``ConfusionIoUMetric``) and an ``optim_wrapper`` whose ``optimizer.lr`` is swept.
        methods: names from :func:`~mmsidetune.cost.bench.known_methods` (variants included),
            or ``['all']``: every registered method for the backbone plus :data:`EXTRA_METHODS`.
        out_dir: ``accuracy.json`` there is read (resume) and rewritten after every method;
            the Runners' logs go under ``out_dir/runs/<method>/lr<lr>``.
        iters: training iterations per (method, lr); val_interval: dev evaluation period.
        lrs: per-method sweeps (:func:`lr_grid`; ``DEFAULT_LRS`` when None).
        cost_steps: timed bench steps for the step-time column (one warm-up, one profiled
            memory step first).
        settings: what must match an existing ``accuracy.json`` to append to it (the schedule,
            seed, config ...); iters, val_interval and seed are added.
        force: start a new report even if the existing one has other settings.
        on_row: called with ``(row, all rows)`` after each method (e.g. to rewrite the report).

    Raises:
        BenchError: unknown methods, or an existing report with other settings (without
            ``force``).
    """
    known = known_methods(cfg)
    if list(methods) == ['all']:
        methods = list(known_methods(cfg, variants=False)) + [m for m in EXTRA_METHODS
                                                              if m in known]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise BenchError(f'unknown methods {unknown}; known: {sorted(known)}')
    settings = dict(settings or {}, iters=iters, val_interval=val_interval, seed=seed)
    path = osp.join(out_dir, 'accuracy.json')
    data = load_results(path)
    if data['rows'] and data.get('settings') != settings:
        if not force:
            raise BenchError(f'{path} was measured with other settings ({data.get("settings")}); '
                             'use another --out-dir, the same options, or --force to start over')
        data = dict(settings=settings, rows=[])
    rows = [r for r in data['rows'] if r.get('status') == 'ok']
    done = {r['method'] for r in rows}
    os.makedirs(out_dir, exist_ok=True)
    for method in methods:
        if method in done:
            print(f'accuracy: {method}: kept from {path}', flush=True)
            continue
        t0 = time.perf_counter()
        row = dict(method=method, status='failed')
        try:
            grid = lr_grid(method, lrs)
            print(f'accuracy: {method}: cost (bench) then lr sweep {grid}, {iters} iterations '
                  'each', flush=True)
            mcfg = apply_method(cfg, method)
            cost = run_bench(cfg, [method], steps=cost_steps, warmup=1, device=device,
                             seed=seed, progress=False)[0]
            row.update({k: cost[k] for k in ('model', 'trainable_params', 'trainable_pct',
                                             'tuning_params', 'tuning_pct', 'tuning_convention',
                                             'memory_mb', 'memory_breakdown_mb',
                                             'memory_source', 'step_ms')})
            best, sweep = None, []
            for lr in grid:
                ts = time.perf_counter()
                runner, hook = _train_one(mcfg, method, lr, iters, val_interval,
                                          osp.join(out_dir, 'runs', method, f'lr{lr:g}'), seed,
                                          device, max(1, min(50, iters // 4)))
                dev = hook.curve[-1]['mIoU'] if hook.curve else None
                sweep.append(dict(lr=lr, dev_mIoU=dev, dev_curve=hook.curve,
                                  final_loss=hook.losses[-1] if hook.losses else None,
                                  train_s=time.perf_counter() - ts))
                score = -1. if dev is None or math.isnan(dev) else dev
                if best is None or score > best[0]:
                    best = (score, lr, runner)
                else:
                    del runner
            row.update(lr=best[1], sweep=sweep)
            row.update(val=_test(best[2]))
            row.update(status='ok')
        except Exception as e:  # one method's failure keeps the other rows
            row.update(error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc())
            print(f'accuracy: {method}: FAILED: {type(e).__name__}: {e}', flush=True)
        row['wall_s'] = time.perf_counter() - t0
        rows = [r for r in rows if r['method'] != method] + [_clean(row)]
        atomic_write_bytes((json.dumps(dict(settings=settings, rows=rows), indent=1) +
                            '\n').encode(), path)
        if row['status'] == 'ok':
            print(f"accuracy: {method}: val mIoU {_pct(row['val']['mIoU'])} at lr {row['lr']:g} "
                  f"({row['wall_s'] / 60:.1f} min)", flush=True)
        if on_row:
            on_row(row, rows)
    return rows


def _pct(v) -> str:
    return '-' if v is None else f'{v:.2f}'


def format_accuracy_table(rows: List[dict]) -> str:
    """Markdown: method, trainable parameters, tuning %, memory, step time, chosen lr, the
    sweep's dev mIoU, validation mIoU / aAcc / mAcc, then per-class IoU."""
    ok = [r for r in rows if r.get('status') == 'ok']
    lines = ['| method | trainable params (M) | tuning % | memory (MB) | step (ms) | lr (chosen '
             'on dev) | dev mIoU per lr | val mIoU | val aAcc | val mAcc |',
             '|---|---:|---:|---:|---:|---:|---|---:|---:|---:|']
    for r in ok:
        sweep = ', '.join(f"{s['lr']:g}: {_pct(s['dev_mIoU'])}" for s in r['sweep'])
        v = r['val']
        lines.append(f"| {r['method']} | {r['trainable_params'] / 1e6:.3f} | "
                     f"{r['tuning_pct']:.2f} | {r['memory_mb']:.0f} | {r['step_ms']:.0f} | "
                     f"{r['lr']:g} | {sweep} | {_pct(v['mIoU'])} | {_pct(v['aAcc'])} | "
                     f"{_pct(v['mAcc'])} |")
    failed = [r for r in rows if r.get('status') != 'ok']
    for r in failed:
        lines.append(f"| {r['method']} | failed: {r.get('error', '?')[:120]} |||||||||")
    if ok:
        classes = list(ok[0]['val']['per_class_iou'])
        lines += ['', 'Per-class IoU (%) on the validation split:', '',
                  '| method | ' + ' | '.join(classes) + ' |',
                  '|---|' + '---:|' * len(classes)]
        for r in ok:
            lines.append(f"| {r['method']} | " + ' | '.join(
                _pct(r['val']['per_class_iou'].get(c)) for c in classes) + ' |')
    return '\n'.join(lines)


#: ``<!-- accuracy-table PATH -->`` ... ``<!-- /accuracy-table -->`` in a markdown page; PATH is an
#: ``accuracy.json`` relative to the page.
_DOC_TABLE = re.compile(r'(<!-- accuracy-table (\S+) -->\n)(.*?)(<!-- /accuracy-table -->)', re.S)


def update_doc_tables(doc_path: str) -> List[str]:
    """Rewrite every block between ``<!-- accuracy-table PATH -->`` and
    ``<!-- /accuracy-table -->`` in the markdown file ``doc_path`` with
    :func:`format_accuracy_table` of the rows in ``PATH`` (an ``accuracy.json``, relative to
    the page); text outside the markers is kept byte for byte. Returns the JSON paths used.

    Raises:
        BenchError: no marker, a begin marker without its end marker, or a missing or invalid
            JSON file (named, with the page).
    """
    with open(doc_path) as f:
        text = f.read()
    used = []

    def table(m):
        path = osp.join(osp.dirname(doc_path), m.group(2))
        if not osp.isfile(path):
            raise BenchError(f'{doc_path}: accuracy-table {m.group(2)}: {path} not found')
        try:
            rows = load_results(path)['rows']
        except ValueError as e:  # not JSON
            raise BenchError(f'{doc_path}: accuracy-table {m.group(2)}: {path}: {e}') from e
        used.append(path)
        return f'{m.group(1)}\n{format_accuracy_table(rows)}\n\n{m.group(4)}'

    new = _DOC_TABLE.sub(table, text)
    begins = text.count('<!-- accuracy-table ')
    if not begins:
        raise BenchError(f'{doc_path}: no "<!-- accuracy-table PATH -->" marker')
    if len(used) != begins or text.count('<!-- /accuracy-table -->') != begins:
        raise BenchError(f'{doc_path}: {begins} "<!-- accuracy-table PATH -->" markers but '
                         f'{text.count("<!-- /accuracy-table -->")} end markers '
                         '"<!-- /accuracy-table -->" (each on a line of its own)')
    atomic_write_bytes(new.encode(), doc_path)
    return used


def write_accuracy_report(rows: List[dict], out_dir: str, meta: Optional[dict] = None) -> dict:
    """Write ``accuracy.md`` (run facts + table) and ``accuracy.png`` (val mIoU against training
    memory; dev mIoU curves of each method's chosen lr) next to ``accuracy.json``."""
    paths = {k: osp.join(out_dir, f'accuracy.{k}') for k in ('md', 'png')}
    head = '\n'.join(f'- {k}: {v}' for k, v in (meta or {}).items())
    atomic_write_bytes(((head + '\n\n' if head else '') + format_accuracy_table(rows) +
                        '\n').encode(), paths['md'])
    ok = [r for r in rows if r.get('status') == 'ok']
    if ok:
        tmp = paths['png'][:-len('.png')] + '.tmp.png'
        _plot(ok, tmp)
        os.replace(tmp, paths['png'])
    return paths


def _plot(rows: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    colors = plt.get_cmap('tab10').colors
    ax = axes[0]
    for i, r in enumerate(rows):
        ax.scatter(r['memory_mb'], r['val']['mIoU'], color=colors[i % 10], s=40)
        ax.annotate(r['method'], (r['memory_mb'], r['val']['mIoU']), fontsize=8,
                    xytext=(4, 4), textcoords='offset points')
    ax.set_xlabel('training memory, one step (MB)')
    ax.set_ylabel('val mIoU (%)')
    ax.set_title('accuracy against training memory')
    ax = axes[1]
    for i, r in enumerate(rows):
        chosen = next(s for s in r['sweep'] if s['lr'] == r['lr'])
        pts = [(c['iter'], c['mIoU']) for c in chosen['dev_curve'] if c['mIoU'] is not None]
        if pts:
            ax.plot(*zip(*pts), marker='o', color=colors[i % 10], label=f"{r['method']} "
                    f"(lr {r['lr']:g})")
    ax.set_xlabel('iteration')
    ax.set_ylabel('dev mIoU (%)')
    ax.set_title('dev curves at the chosen learning rate')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
