"""The paper-size bench configs (configs/bench/): the papers' models, sizes and batch on the
bundled photos, switched by bench's method selection. Built and counted here, never trained."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

from mmsidetune.cost import apply_method, count_parameters

BENCH_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                     'bench')
COCO = 'cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_bench-2x1333x800_bundled-coco.py'
VOC = 'retinanet_e3va-swin-l-p4-w7_fpn_bench-2x1000x600_bundled-coco.py'
ADE = 'upernet_e3va-swin-l-p4-w7_bench-2x512x512_bundled-seg.py'
M2IST = 'm2ist_r50-bert-base_bench-8x640x640_bundled-refexp.py'


@pytest.fixture
def skip_random_init(monkeypatch):
    """Counting needs shapes, not values: skip the random draws (most of a Swin-L build's time)."""
    for name in ('uniform_', 'normal_', 'kaiming_uniform_', 'kaiming_normal_', 'xavier_uniform_',
                 'xavier_normal_', 'trunc_normal_', 'orthogonal_'):
        monkeypatch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)


def _build(cfg, method):
    cfg = apply_method(cfg, method)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


# (config, method, backbone-side tuning params of SPEC.md section 1, tuning % of the paper)
@pytest.mark.parametrize('name, method, budget, pct', [
    (COCO, 'e3va', 1.20e6, 1.38),
    (VOC, 'e3va', 1.79e6, 0.90),
    (ADE, 'e3va', 1.79e6, 0.90),
    (COCO, 'lora', 3.03e6, None),
])
def test_swin_bench_configs_are_the_paper_models(name, method, budget, pct, skip_random_init):
    cfg = Config.fromfile(osp.join(BENCH_DIR, name))
    assert cfg.model.backbone.init_cfg is None  # random init
    c = count_parameters(_build(cfg, method))
    assert abs(c.tuning - budget) / budget < 0.02
    if pct is not None:
        assert c.tuning_pct == pytest.approx(pct, abs=0.02)


def test_m2ist_bench_config_is_transvg_r50_bert_base(skip_random_init):
    cfg = Config.fromfile(osp.join(BENCH_DIR, M2IST))
    counts = {m: count_parameters(_build(cfg, m)) for m in ('m2ist', 'full')}
    # TransVG-R50 + BERT-base: about 151 M parameters (the paper's 100 %)
    assert 145e6 < counts['full'].total < 156e6
    # side adapters by the layer sizes of SPEC.md section 2: about 2.99 M, ~2 % of all
    assert abs(counts['m2ist'].tuning - 2.99e6) / 2.99e6 < 0.03
    assert 1.8 < counts['m2ist'].tuning_pct < 2.2


@pytest.mark.parametrize('name, shape, batch', [
    (COCO, (800, 1333), 2), (VOC, (600, 1000), 2), (ADE, (512, 512), 2), (M2IST, (640, 640), 8)])
def test_bench_batches_have_the_paper_size(name, shape, batch):
    cfg = Config.fromfile(osp.join(BENCH_DIR, name))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    data = next(iter(loader))
    assert len(data['inputs']) == batch
    assert all(tuple(img.shape[-2:]) == shape for img in data['inputs'])
