"""The M2IST configs: recipe fields, per-dataset token lengths and checkpoints, model sizes
that agree with the data side's dataset bases, two learning rates through paramwise_cfg."""
from pathlib import Path

import pytest
from conftest import ROOT
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

CONFIGS = {
    'm2ist_r50-bert-base_8xb8-90e_refcoco.py': ('detr-r50-unc.pth', 20, 90, 60),
    'm2ist_r50-bert-base_8xb8-180e_refcoco+.py': ('detr-r50-unc.pth', 20, 180, 120),
    'm2ist_r50-bert-base_8xb8-90e_refcocog-umd.py': ('detr-r50-gref.pth', 40, 90, 60),
    'm2ist_r50-bert-base_8xb8-90e_refcocog-google.py': ('detr-r50-gref.pth', 40, 90, 60),
    'm2ist_r50-bert-base_8xb8-90e_referit.py': ('detr-r50-referit.pth', 20, 90, 60),
}
DEMO = 'm2ist_minilm-r18_vl-enc2_1000i_bundled-refexp.py'


@pytest.fixture(scope='module')
def config_dir():
    return Path(ROOT) / 'configs' / 'm2ist'


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_full_configs_follow_the_paper_recipe(config_dir, name):
    ckpt, tokens, epochs, drop = CONFIGS[name]
    cfg = Config.fromfile(str(config_dir / name))
    assert cfg.custom_imports['imports'] == ['mmsidetune']
    model = cfg.model
    assert model.type == 'M2ISTGrounder' and model.method == 'm2ist'
    assert model.backbone.checkpoint == f'checkpoints/{ckpt}'
    assert model.backbone.resnet.depth == 50 and model.backbone.num_layers == 6
    assert model.language_model.max_tokens == model.neck.num_text_tokens == tokens
    assert model.neck.num_visual_tokens == 400 == (cfg.pad_size // 32)**2
    assert tokens == cfg.max_text_len  # the data side's value for this dataset
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[0].milestones == [drop] and cfg.param_scheduler[0].gamma == 0.1
    opt = cfg.optim_wrapper
    assert opt.constructor == 'TrainableOptimWrapperConstructor'
    assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.weight_decay) == ('AdamW', 1e-4,
                                                                               1e-4)
    hook = cfg.default_hooks.checkpoint
    assert (hook.save_best, hook.rule) == ('Acc@0.5', 'greater')


@pytest.mark.parametrize('method', ['m2ist', 'adapter'])
def test_paper_schedule_gives_two_learning_rates(config_dir, method):
    """The paper schedule on the small model: adapters (M3ISA side network or serial adapters)
    at 1e-5, the rest that trains at 1e-4, frozen encoders absent from the optimizer."""
    schedule = Config.fromfile(str(config_dir / '_base_' / 'schedules' / 'm2ist_adamw-step_90e.py'))
    cfg = Config.fromfile(str(config_dir / DEMO))
    cfg.model.method = method
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, schedule.optim_wrapper)
    lrs = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            lrs[id(p)] = group['lr']
    for name, p in model.named_parameters():
        if p.requires_grad:
            expected = 1e-5 if name.startswith(('side_network.', 'adapters.')) else 1e-4
            assert lrs[id(p)] == pytest.approx(expected), name
        else:
            assert id(p) not in lrs, name


def test_demo_config_sizes_agree_with_its_data(config_dir):
    cfg = Config.fromfile(str(config_dir / DEMO))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert model.neck.num_visual_tokens == (cfg.pad_size // 32)**2 == 100
    assert model.neck.num_text_tokens == cfg.max_text_len
