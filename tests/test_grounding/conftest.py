"""Fixtures for the grounding tests: the small M2IST of configs/m2ist (real MiniLM BERT,
random-init narrow ResNet-18 + 2-layer DETR), and hand-made grounding batches."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import InstanceData

import mmsidetune  # noqa: F401  (registers the modules)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MINI_MODEL = osp.join(ROOT, 'configs', 'm2ist', '_base_', 'models', 'm2ist_minilm-r18-mini.py')
R50_BERT_MODEL = osp.join(ROOT, 'configs', 'm2ist', '_base_', 'models', 'm2ist_r50-bert-base.py')


@pytest.fixture(scope='session')
def mini_model_cfg():
    init_default_scope('mmdet')
    return Config.fromfile(MINI_MODEL).model


@pytest.fixture(scope='session')
def build_mini():
    """``build_mini(method, **overrides)``: the small M2IST, seeded, init_weights() applied."""
    init_default_scope('mmdet')
    base = Config.fromfile(MINI_MODEL).model

    def _build(method='m2ist', **overrides):
        cfg = copy.deepcopy(base)
        cfg.method = method
        cfg.update(overrides)
        torch.manual_seed(0)
        model = MODELS.build(cfg)
        model.init_weights()
        return model

    return _build


def make_batch(num=2, size=320, seed=0):
    """``dict(inputs=[uint8 (3, size, size)], data_samples=[...])`` as the pipeline packs it:
    640x480 originals scaled by size/640, centred vertically on the canvas."""
    g = torch.Generator().manual_seed(seed)
    phrases = ['the person on the left', 'green bottle next to the cup', 'the right dog']
    scale = size / 640
    content_h = round(480 * scale)
    top = (size - content_h) // 2
    samples, inputs = [], []
    for k in range(num):
        s = DetDataSample(metainfo=dict(
            img_shape=(content_h, size), pad_shape=(size, size), pad_offset=(top, 0),
            ori_shape=(480, 640), scale_factor=(scale, scale), flip=False, img_id=k))
        s.text = phrases[k % len(phrases)]
        x1, y1 = 20 + 30 * k, top + 10 + 5 * k
        s.gt_instances = InstanceData(bboxes=torch.tensor([[x1, y1, x1 + 80., y1 + 60.]]),
                                      labels=torch.tensor([0]))
        samples.append(s)
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture
def batch():
    return make_batch()
