"""A short Runner.train() on the bundled real photos with the cost hook."""
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmsidetune.cost import count_parameters
from mmsidetune.hooks import TrainingCostHook


SEG_DEMO = 'upernet_e3va-swin-mini_40i_bundled-seg-384x384.py'


def _train(config, work_dir, batch_size):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    # mmengine keeps one visualizer per name for the whole process: a name of its own, or
    # scalars.json goes to the work_dir of an earlier Runner built by another test
    cfg.visualizer.name = f'visualizer-{osp.basename(str(work_dir))}'
    cfg.train_cfg.max_iters = 3
    cfg.train_cfg.val_interval = 1000  # no validation in this test
    cfg.train_dataloader.batch_size = batch_size
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1000
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.parametrize('which', ['mmdet', 'mmseg'])
def test_runner_train_logs_cost_scalars(demo_config, tmp_path, which):
    """mmdet: Cascade Mask R-CNN on the bundled COCO set; mmseg: UperNet on its label maps."""
    if which == 'mmdet':
        runner = _train(demo_config, tmp_path, batch_size=1)
    else:  # batch 2: the UperNet head's BatchNorm needs more than one value per channel
        runner = _train(osp.join(osp.dirname(demo_config), SEG_DEMO), tmp_path, batch_size=2)
    assert type(runner.model.backbone).__name__ == 'E3VASwinTransformer'
    scalars_file = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    records = [json.loads(line) for line in open(scalars_file)]
    train = [r for r in records if 'loss' in r]
    assert len(train) == 3
    for key in ('peak_mem_mb', 'step_ms', 'trainable_params', 'trainable_pct',
                'backbone_trainable_pct'):
        assert all(key in r for r in train), key
    params = count_parameters(runner.model)
    assert train[0]['trainable_params'] == params.trainable
    assert 0 < train[0]['backbone_trainable_pct'] < 5
    assert all(r['peak_mem_mb'] > 0 and r['step_ms'] > 0 for r in train)

    log_text = open(osp.join(runner.log_dir, osp.basename(runner.log_dir) + '.log')).read()
    assert 'peak_mem_mb' in log_text and 'TrainingCostHook summary' in log_text
    summary = json.load(open(osp.join(str(tmp_path), 'cost_summary.json')))
    assert summary['iters'] == 3 and summary['memory_mode'] == 'saved_tensors'
    assert summary['peak_mem_mb'] == pytest.approx(max(r['peak_mem_mb'] for r in train), rel=1e-6)
    assert summary['params']['trainable'] == params.trainable


def test_bad_memory_mode_raises():
    with pytest.raises(ValueError, match='memory'):
        TrainingCostHook(memory='gpu')
