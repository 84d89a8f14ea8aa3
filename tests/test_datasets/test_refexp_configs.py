"""Dataset configs: real-data configs name the right files; the bundled demo builds."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DATASETS, init_default_scope

import mmsidetune  # noqa: F401  (registers the dataset and transforms)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(ROOT, 'configs', 'm2ist', '_base_', 'datasets')


@pytest.mark.parametrize('name, key, val, tests, max_len, images', [
    ('refcoco', 'unc', 'val', ['val', 'testA', 'testB'], 20, 'mscoco/images/train2014/'),
    ('refcoco+', 'unc+', 'val', ['val', 'testA', 'testB'], 20, 'mscoco/images/train2014/'),
    ('refcocog-umd', 'gref_umd', 'val', ['val', 'test'], 40, 'mscoco/images/train2014/'),
    ('refcocog-google', 'gref', 'val', ['val'], 40, 'mscoco/images/train2014/'),
    ('referit', 'referit', 'val', ['test'], 20, 'referit/images/'),
])
def test_real_dataset_configs(name, key, val, tests, max_len, images):
    cfg = Config.fromfile(osp.join(CFG_DIR, f'{name}.py'))
    assert cfg.max_text_len == max_len and cfg.pad_size == 640
    train, valid = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
    assert train.ann_file == f'split/data/{key}/{key}_train.pth' and train.dataset_key == key
    assert valid.ann_file == f'split/data/{key}/{key}_{val}.pth' and valid.test_mode
    assert train.data_prefix.img_path.endswith(images) and valid.data_prefix == train.data_prefix
    test = cfg.test_dataloader.dataset
    assert test.type == 'ConcatDataset'
    assert [d.ann_file for d in test.datasets] == [f'split/data/{key}/{key}_{s}.pth' for s in tests]
    assert all(d.data_prefix == train.data_prefix and d.test_mode for d in test.datasets)
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'GroundingAccuracy'
    init_default_scope('mmdet')
    Compose(cfg.train_dataloader.dataset.pipeline)  # every transform type resolves


def test_bundled_config_yields_contract_samples():
    cfg = Config.fromfile(osp.join(CFG_DIR, 'bundled_refexp.py'))
    init_default_scope('mmdet')
    np.random.seed(0)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert (len(train), len(val)) == (33, 19)
    for i in range(len(train)):
        out = train[i]
        sample = out['data_samples']
        assert out['inputs'].shape == (3, 320, 320)
        x1, y1, x2, y2 = sample.gt_instances.bboxes[0].tolist()
        top, left = sample.pad_offset
        h, w = sample.img_shape
        assert left - 1e-3 <= x1 < x2 <= left + w + 1e-3 and top - 1e-3 <= y1 < y2 <= top + h + 1e-3
    sample = val[len(val) - 1]['data_samples']
    assert sample.img_path.endswith('quokka.jpg') and sample.split == 'val'
    # 640x429 -> 320x215 (429 / 2 rounds up), centred: 52 rows above; xywh 95, 33, 271, 396.
    assert sample.img_shape == (215, 320) and sample.pad_offset == (52, 0)
    sy = 215 / 429
    torch.testing.assert_close(sample.gt_instances.bboxes,
                               torch.tensor([[47.5, 33 * sy + 52, 183.0, 429 * sy + 52]]))
