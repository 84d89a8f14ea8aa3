"""A short Runner.train() on the bundled real photos with the cost hook."""
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmsidetune.cost import CATEGORIES, count_parameters, run_bench, set_img_size
from mmsidetune.hooks import TrainingCostHook

SEG_DEMO = 'upernet_e3va-swin-mini_40i_bundled-seg-384x384.py'
SEG_SIZE = (192, 160)  # (W, H): the cheapest size the seg demo trains at


def _train(cfg, work_dir, batch_size, max_iters=3, **hook):
    cfg.work_dir = str(work_dir)
    # mmengine keeps one visualizer per name for the whole process: a name of its own, or
    # scalars.json goes to the work_dir of an earlier Runner built by another test
    cfg.visualizer.name = f'visualizer-{osp.basename(str(work_dir))}'
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 1000  # no validation in this test
    cfg.train_dataloader.batch_size = batch_size
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1000
    others = [h for h in cfg.get('custom_hooks', []) if h['type'] != 'TrainingCostHook']
    cfg.custom_hooks = others + [dict(type='TrainingCostHook', **hook)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    records = [json.loads(line) for line in
               open(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))]
    return runner, [r for r in records if 'loss' in r]


def test_runner_train_logs_cost_scalars(demo_config, tmp_path):
    """mmdet Cascade Mask R-CNN on the bundled COCO set; memory measured at iteration 1 only."""
    runner, train = _train(Config.fromfile(demo_config), tmp_path, batch_size=1,
                           memory_start=1, memory_interval=100)
    assert type(runner.model.backbone).__name__ == 'E3VASwinTransformer'
    assert len(train) == 3
    for key in ('step_ms', 'trainable_params', 'trainable_pct', 'backbone_trainable_pct',
                'tuning_pct'):
        assert all(key in r for r in train), key
    assert 'peak_mem_mb' not in train[0]  # iteration 0 is not profiled
    mem_keys = ['peak_mem_mb'] + [f'mem_{k}_mb' for k in CATEGORIES]
    assert all(k in train[1] for k in mem_keys)
    assert sum(train[1][f'mem_{k}_mb'] for k in CATEGORIES) == pytest.approx(
        train[1]['peak_mem_mb'], rel=1e-6)
    params = count_parameters(runner.model)
    assert train[0]['trainable_params'] == params.trainable
    assert train[0]['tuning_pct'] == pytest.approx(params.backbone_trainable_pct)
    assert 0 < train[0]['tuning_pct'] < 5
    # the split at the peak holds every parameter and the AdamW moments of the trainable ones
    assert train[1]['mem_parameters_mb'] * 2**20 == sum(p.numel() * 4
                                                       for p in runner.model.parameters())
    assert train[1]['mem_optimizer_mb'] * 2**20 >= 2 * 4 * params.trainable

    log_text = open(osp.join(runner.log_dir, osp.basename(runner.log_dir) + '.log')).read()
    assert 'mem_activations_mb' in log_text and 'TrainingCostHook summary' in log_text
    summary = json.load(open(osp.join(str(tmp_path), 'cost_summary.json')))
    assert summary['iters'] == 3 and summary['memory_mode'] == 'cpu_profiler'
    assert summary['peak_mem_mb'] == pytest.approx(train[1]['peak_mem_mb'], rel=1e-6)
    assert summary['params']['trainable'] == params.trainable


def test_hook_peak_equals_bench_memory_for_the_same_step(demo_config, tmp_path):
    """Same model, batch shapes and seed: the hook's iteration 1 is bench's memory step (the
    step after one warm-up step), and the two report the same bytes, split alike."""
    cfg = set_img_size(Config.fromfile(osp.join(osp.dirname(demo_config), SEG_DEMO)), SEG_SIZE)
    rows = run_bench(cfg, ['e3va'], steps=1, warmup=1, batch_size=2, progress=False)
    # batch 2: the UperNet head's BatchNorm needs more than one value per channel
    _, train = _train(cfg, tmp_path, batch_size=2, max_iters=2, memory_start=1)
    assert train[1]['peak_mem_mb'] == pytest.approx(rows[0]['memory_mb'], abs=1e-9)
    for key in CATEGORIES:
        assert train[1][f'mem_{key}_mb'] == pytest.approx(rows[0]['memory_breakdown_mb'][key],
                                                           abs=1e-9), key


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='memory'):
        TrainingCostHook(memory='gpu')
    with pytest.raises(ValueError, match='memory_interval'):
        TrainingCostHook(memory_interval=0)
