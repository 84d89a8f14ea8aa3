"""Compare the training cost of tuning methods on the same model, data and process.

Used by ``tools/bench.py``. For each method the model config is switched by the model's own
:class:`~mmsidetune.tuners.ModelTuning` (bench knows no model: it asks
:func:`~mmsidetune.tuners.find_model_tuning` which methods a config supports and how to switch
them), the model and its optimizer are built from the config, and warm-up then timed training
steps run on the *same* real batches, with methods interleaved step by step so that machine noise
hits them alike (docs/cost_accounting.md).
"""
import copy
import json
import os
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, set_random_seed
from mmengine.utils import ProgressBar

from ..tuners.registry import ModelTuning, find_model_tuning
from ..utils.atomic_io import atomic_write_bytes
from .accounting import MB, SavedTensorMeter, StepTimer, count_parameters
from .memory import CATEGORIES, StepMemory, StepMemoryMeter

__all__ = ['BenchError', 'apply_method', 'set_img_size', 'use_amp', 'run_bench', 'write_report',
           'read_report', 'format_table', 'known_methods']


class BenchError(ValueError):
    """Bad bench input (method, config, sizes, device): ``tools/bench.py`` prints it in one line;
    any other error keeps its traceback."""


def _model_tuning(cfg: Config) -> ModelTuning:
    try:
        return find_model_tuning(cfg.model)
    except ValueError as e:
        raise BenchError(str(e)) from None


def known_methods(cfg: Config, variants: bool = True) -> Sequence[str]:
    """The methods ``cfg``'s model supports (``--methods all``, in display order); with
    ``variants``, also the bench variants of those methods (``'e3va-lowmem'`` ...).

    Raises:
        ValueError: if no tuning method applies to the config's model.
    """
    tuning = _model_tuning(cfg)
    names = list(tuning.methods(cfg.model))
    return names + (tuning.variants(cfg.model) if variants else [])


def apply_method(cfg: Config, method: str) -> Config:
    """Return a copy of ``cfg`` trained with tuning ``method`` (``'full'``, ``'e3va'``, a variant
    such as ``'e3va-lowmem'``), switched by the model's :class:`~mmsidetune.tuners.ModelTuning`.

    Raises:
        ValueError: for a method the config's model does not support (the supported ones are
            listed), or a model no tuning method applies to.
    """
    known = known_methods(cfg)
    if method not in known:
        raise BenchError(f'unknown method {method!r}; known: {sorted(known)}')
    cfg = copy.deepcopy(cfg)
    cfg.model = _model_tuning(cfg).apply(cfg.model, method)
    return cfg


def set_img_size(cfg: Config, size: Tuple[int, int]) -> Config:
    """Return a copy of ``cfg`` whose training images are ``size = (W, H)`` pixels.

    Every ``pipeline`` under ``train_dataloader.dataset`` (wrappers such as ``RepeatDataset`` and
    ``ConcatDataset`` included) gets a final ``Resize(scale=(W, H), keep_ratio=False)`` just before
    its ``Pack*Inputs`` transform, after the config's own resizes and crops, so boxes, masks and
    label maps are resized with the image. A ``model.data_preprocessor.size`` (mmseg's fixed
    padding size) is set to ``(H, W)``.

    Raises:
        ValueError: for a non-positive size, a train pipeline without a ``Pack*Inputs`` step, or
            a model whose input size is fixed (its :class:`~mmsidetune.tuners.ModelTuning`
            says why).
    """
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise BenchError(f'image size must be positive, got {w}x{h}')
    reason = _model_tuning(cfg).fixed_input_size(cfg.model)
    if reason:
        raise BenchError(f'--img-size does not apply: {reason}')
    cfg = copy.deepcopy(cfg)
    found = []

    def _visit(node):
        if isinstance(node, dict):
            pipeline = node.get('pipeline')
            if isinstance(pipeline, list):
                packs = [i for i, t in enumerate(pipeline)
                         if str(t.get('type', '')).split('.')[-1].startswith('Pack')]
                if not packs:
                    raise BenchError('--img-size: a train pipeline has no Pack*Inputs transform '
                                     'to insert the resize before')
                pipeline.insert(packs[0], dict(type='Resize', scale=(w, h), keep_ratio=False))
                found.append(pipeline)
            for value in node.values():
                _visit(value)
        elif isinstance(node, list):
            for value in node:
                _visit(value)

    _visit(cfg.train_dataloader.dataset)
    if not found:
        raise BenchError('--img-size: no pipeline found under train_dataloader.dataset')
    preprocessor = cfg.model.get('data_preprocessor')
    if preprocessor is not None and preprocessor.get('size') is not None:
        preprocessor.size = (h, w)
    return cfg


def use_amp(cfg: Config, device: str) -> Config:
    """Return a copy of ``cfg`` training with mmengine's ``AmpOptimWrapper`` (float16 autocast,
    dynamic loss scaling).

    Raises:
        ValueError: on a CPU device: mmengine 0.10's ``AmpOptimWrapper`` asserts that CUDA (or an
            NPU/MLU/MUSA) is available, so mixed precision is measured on GPUs only.
    """
    if not device.startswith('cuda'):
        raise BenchError('--amp needs --device cuda: mmengine\'s AmpOptimWrapper refuses to run '
                         'without a GPU (it asserts CUDA/NPU/MLU/MUSA availability)')
    cfg = copy.deepcopy(cfg)
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    return cfg


def _collect_batches(cfg: Config, num: int, batch_size: Optional[int], seed: int) -> List[dict]:
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    if batch_size is not None:
        loader_cfg.batch_size = batch_size
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    if len(loader.dataset) == 0:  # an infinite sampler would wait forever for a first batch
        raise BenchError('the train_dataloader dataset is empty (check data_root, ann_file and '
                         'filter_cfg)')
    batches, it = [], iter(loader)
    while len(batches) < num:
        try:
            batches.append(next(it))
        except StopIteration:
            it = iter(loader)
    return batches


class _MethodRun:
    """One method's model, optimizer and measurements."""

    def __init__(self, cfg: Config, method: str, device: str, seed: int):
        self.method = method
        self.cfg = apply_method(cfg, method)
        self.model_name = find_model_tuning(self.cfg.model).describe(self.cfg.model)
        torch.manual_seed(seed)
        self.model = MODELS.build(self.cfg.model)
        self.model.init_weights()
        self.model.to(device)
        self.model.train()
        self.optim_wrapper = build_optim_wrapper(self.model, copy.deepcopy(self.cfg.optim_wrapper))
        self.device = device
        self.params = count_parameters(self.model)
        self.memory: Optional[StepMemory] = None
        self.saved_bytes: Optional[int] = None
        self.step_ms: List[float] = []
        self.losses: List[float] = []

    def step(self, batch: dict, record: bool) -> None:
        """An untimed warm-up step (``record=False``) or a timed one."""
        timer = StepTimer(self.device)
        with timer.measure():
            log_vars = self.model.train_step(batch, self.optim_wrapper)
        if record:
            self.step_ms.append(timer.ms)
            self.losses.append(float(log_vars['loss'].detach()))

    def memory_step(self, batch: dict) -> None:
        """The untimed step whose peak live bytes (:class:`StepMemoryMeter`) and saved-for-backward
        bytes are measured; both meters slow the step, so it is never timed."""
        meter = StepMemoryMeter(self.model, self.optim_wrapper)
        with meter, SavedTensorMeter(exclude=self.model.parameters()) as saved:
            self.model.train_step(batch, self.optim_wrapper)
        self.memory, self.saved_bytes = meter.result, saved.bytes

    def row(self) -> Dict:
        p = self.params
        return dict(
            method=self.method,
            model=self.model_name,
            total_params=p.total,
            trainable_params=p.trainable,
            trainable_pct=p.trainable_pct,
            backbone_trainable_params=p.backbone_trainable,
            backbone_trainable_pct=p.backbone_trainable_pct,
            tuning_params=p.tuning,
            tuning_pct=p.tuning_pct,
            tuning_convention=p.tuning_convention,
            memory_mb=self.memory.peak_mb,
            memory_breakdown_mb=self.memory.breakdown_mb(),
            memory_source=self.memory.source,
            saved_for_backward_mb=self.saved_bytes / MB,
            step_ms=statistics.median(self.step_ms),
            final_loss=self.losses[-1])


def run_bench(cfg: Config,
              methods: Sequence[str],
              steps: int = 5,
              warmup: int = 2,
              device: str = 'cpu',
              batch_size: Optional[int] = None,
              seed: int = 0,
              progress: bool = True,
              img_size: Optional[Tuple[int, int]] = None,
              amp: bool = False) -> List[Dict]:
    """Train each method ``warmup + 1 + steps`` iterations on the same batches; one row each.

    Per method: ``warmup`` untimed steps, one untimed memory step (profiled: peak live tensor
    bytes and its split, :class:`~mmsidetune.cost.memory.StepMemoryMeter`, plus the
    saved-for-backward bytes), then ``steps`` timed steps without any meter. Methods are
    interleaved step by step.

    Args:
        cfg: a config whose model has a :class:`~mmsidetune.tuners.ModelTuning` (an mmdet/mmseg
            model with a supported backbone, or the M2IST grounder), ``train_dataloader`` and
            ``optim_wrapper``.
        methods: method names (:func:`known_methods`), or ``['all']`` (every method the model
            supports, variants excepted).
        steps: timed steps per method (median reported). warmup: untimed steps first (use
            at least 1, so that the optimizer state exists in the memory step, as in training).
        device: ``'cpu'`` or ``'cuda'`` / ``'cuda:N'``.
        batch_size: override ``train_dataloader.batch_size``.
        img_size: train on ``(W, H)`` images (see :func:`set_img_size`).
        amp: mixed precision with mmengine's ``AmpOptimWrapper`` (CUDA only, see :func:`use_amp`).

    Returns:
        Rows with ``method``, ``trainable_params``, ``trainable_pct`` (% of the model),
        ``backbone_trainable_params``, ``backbone_trainable_pct`` (% of the backbone),
        ``tuning_params``, ``tuning_pct``, ``tuning_convention`` (the paper's convention, see
        :class:`~mmsidetune.cost.ParamCount`), ``memory_mb`` (MB = 2**20 bytes: peak of live
        tensor bytes during the memory step), ``memory_breakdown_mb`` (dict: parameters,
        gradients, optimizer, activations, temporaries at the peak; sums to ``memory_mb``),
        ``memory_source`` (``cpu_profiler`` or ``cuda_allocator``), ``saved_for_backward_mb``
        (bytes autograd holds when backward begins), ``step_ms`` (median, ms), ``memory_ratio``
        and ``time_ratio`` (to the ``full`` row; ``None`` when ``full`` was not run).

    Raises:
        ValueError: for unknown methods, ``steps < 1``, CUDA requested but unavailable, ``amp``
            on CPU, or an ``img_size`` that cannot be applied.
    """
    known = known_methods(cfg)
    if list(methods) == ['all']:
        methods = list(known_methods(cfg, variants=False))
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise BenchError(f'unknown methods {unknown}; known: {sorted(known)}')
    if steps < 1 or warmup < 0:
        raise BenchError(f'steps must be >= 1 and warmup >= 0, got {steps}, {warmup}')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise BenchError('--device cuda requested but torch.cuda.is_available() is False')
    if amp:
        cfg = use_amp(cfg, device)
    if img_size is not None:
        cfg = set_img_size(cfg, img_size)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    # Python, numpy and torch RNGs (augmentations, RoI sampling): the same batches and the same
    # byte counts on every run.
    set_random_seed(seed)
    batches = _collect_batches(cfg, warmup + 1 + steps, batch_size, seed)
    runs = []
    for method in methods:
        runs.append(_MethodRun(cfg, method, device, seed))
        if progress:
            p = runs[-1].params
            print(f'bench: {method:>11}: {runs[-1].model_name}, trainable '
                  f'{p.trainable / 1e6:.3f} M ({p.trainable_pct:.2f} % of the model); tuning '
                  f'{p.tuning / 1e6:.3f} M = {p.tuning_pct:.2f} % ({p.tuning_convention})',
                  flush=True)
    bar = ProgressBar(len(runs) * len(batches)) if progress else None
    for i, batch in enumerate(batches):
        for run in runs:  # interleaved: step i of every method, then step i + 1
            if i == warmup:  # the profiled memory step, between warm-up and timing
                run.memory_step(batch)
            else:
                run.step(batch, record=i > warmup)
            if bar:
                bar.update()
    if bar:
        print()
    rows = [run.row() for run in runs]
    ref = next((r for r in rows if r['method'] == 'full'), None)
    for r in rows:
        r['memory_ratio'] = r['memory_mb'] / ref['memory_mb'] if ref else None
        r['time_ratio'] = r['step_ms'] / ref['step_ms'] if ref else None
    return rows


def format_table(rows: List[Dict]) -> str:
    """Markdown table of bench rows: params in M and %, tuning share in the paper's convention,
    memory (peak and its split) in MB, saved-for-backward MB, time in ms, ratios to full."""

    def ratio(v):
        return '-' if v is None else f'{v:.2f}x'

    lines = ['| method | trainable params (M) | trainable % of model | tuning % | memory (MB) | '
             'params | grads | optim | activ. | temp. | saved for bwd (MB) | step (ms) | '
             'memory vs full | time vs full |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        split = r['memory_breakdown_mb']
        lines.append(f"| {r['method']} | {r['trainable_params'] / 1e6:.3f} | "
                     f"{r['trainable_pct']:.2f} | {r['tuning_pct']:.2f} | {r['memory_mb']:.1f} | " +
                     ' | '.join(f'{split[k]:.1f}' for k in CATEGORIES) +
                     f" | {r['saved_for_backward_mb']:.1f} | {r['step_ms']:.0f} | "
                     f"{ratio(r['memory_ratio'])} | {ratio(r['time_ratio'])} |")
    conventions = sorted({r['tuning_convention'] for r in rows})
    lines.append('')
    lines.append(f"tuning %: {'; '.join(conventions)}. memory: peak of live tensor bytes in one "
                 'training step, split at the peak (params, grads, optim(izer state), '
                 'activ(ations), temp(oraries)).')
    return '\n'.join(lines)


def write_report(rows: List[Dict], out_dir: str, meta: Optional[Dict] = None) -> Dict[str, str]:
    """Write ``bench.json`` (``{"meta": run facts, "rows": rows}``), ``bench.md`` (run facts +
    table) and ``bench.png`` (bar charts of the tuning share, the memory peak stacked by its
    split, and step time) into ``out_dir``; return their paths.

    ``meta`` holds the run facts that a docs table cites (``tools/bench.py`` writes ``date``,
    ``command``, ``machine``, ``device``, versions, ...); ``tools/bench_table.py`` rewrites the
    measured tables of README/docs from this file (docs/cost_accounting.md).
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: osp.join(out_dir, f'bench.{k}') for k in ('json', 'md', 'png')}
    table = '\n'.join(f'- {k}: {v}' for k, v in (meta or {}).items())
    table = (table + '\n\n' if table else '') + format_table(rows) + '\n'
    report = dict(meta=dict(meta or {}), rows=rows)
    # Each file is written whole under a temporary name, then renamed: never a half-written report.
    for key, text in (('json', json.dumps(report, indent=2) + '\n'), ('md', table)):
        atomic_write_bytes(text.encode(), paths[key])
    tmp_png = paths['png'][:-len('.png')] + '.tmp.png'  # matplotlib picks the format by extension
    _plot(rows, tmp_png, title=(meta or {}).get('config', ''))
    os.replace(tmp_png, paths['png'])
    return paths


def read_report(path: str) -> Tuple[Dict, List[Dict]]:
    """``(meta, rows)`` of a ``bench.json`` written by :func:`write_report`; a file of an earlier
    release (a bare list of rows) gives empty ``meta``.

    Raises:
        ValueError: naming ``path``, when it cannot be read or parsed, or holds neither form, or
            a row without ``method``.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'cannot read bench report {path}: {e}') from None
    if isinstance(data, list):
        meta, rows = {}, data
    elif isinstance(data, dict) and isinstance(data.get('rows'), list):
        meta, rows = data.get('meta') or {}, data['rows']
    else:
        raise ValueError(f'{path}: not a bench report (expected {{"meta": ..., "rows": [...]}} '
                         'as tools/bench.py writes)')
    bad = [i for i, r in enumerate(rows) if not isinstance(r, dict) or 'method' not in r]
    if bad:
        raise ValueError(f'{path}: rows {bad} have no "method"')
    return meta, rows


def _plot(rows: List[Dict], path: str, title: str = '') -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [r['method'] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(4 * 3 + 2, 4.5))
    colors = plt.get_cmap('tab10').colors

    def _annotate(ax, bars, texts):
        for bar, text in zip(bars, texts):
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height() + bar.get_y()),
                        ha='center', va='bottom', fontsize=9)

    ax = axes[0]
    bars = ax.bar(names, [r['tuning_pct'] for r in rows],
                  color=[colors[i % 10] for i in range(len(rows))])
    _annotate(ax, bars, [f"{r['tuning_pct']:.2f}" for r in rows])
    ax.set_title('tuning params (% , paper convention)')

    ax = axes[1]  # stacked: the split of the peak
    bottom = [0.0] * len(rows)
    for i, key in enumerate(CATEGORIES):
        values = [r['memory_breakdown_mb'][key] for r in rows]
        bars = ax.bar(names, values, bottom=bottom, color=colors[i % 10], label=key)
        bottom = [b + v for b, v in zip(bottom, values)]
    _annotate(ax, bars, [f"{r['memory_mb']:.0f}" if r['memory_ratio'] is None else
                         f"{r['memory_ratio']:.2f}x" for r in rows])
    ax.set_title('training memory: peak (MB)')
    ax.legend(fontsize=8)

    ax = axes[2]
    bars = ax.bar(names, [r['step_ms'] for r in rows],
                  color=[colors[i % 10] for i in range(len(rows))])
    _annotate(ax, bars, [f"{r['step_ms']:.0f}" if r['time_ratio'] is None else
                         f"{r['time_ratio']:.2f}x" for r in rows])
    ax.set_title('step time (ms)')
    for ax in axes:
        ax.tick_params(axis='x', rotation=30)
        ax.margins(y=0.15)
    if title:
        fig.suptitle(osp.basename(title), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
