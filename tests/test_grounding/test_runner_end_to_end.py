"""A short ``Runner.train()`` + ``Runner.val()`` of the M2IST demo config on the bundled
expressions (issue 4): only the side of the model moves, and validation reports Acc@0.5."""
import os.path as osp

import torch
from conftest import ROOT
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

DEMO = osp.join(ROOT, 'configs', 'm2ist', 'm2ist_minilm-r18_vl-enc2_1000i_bundled-refexp.py')


class _Snapshot(Hook):
    """Weights as training starts (after the Runner's init_weights)."""

    def before_train(self, runner):
        self.state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def test_train_then_val_on_bundled_expressions(tmp_path):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path)
    cfg.visualizer.name = f'visualizer-{tmp_path.name}'  # one per name and process in mmengine
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4)
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 2
    cfg.default_hooks.checkpoint.interval = 4
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    snapshot = _Snapshot()
    runner.register_hook(snapshot)
    model = runner.model
    runner.train()
    before = snapshot.state
    metrics = runner.val()

    assert set(metrics) == {'Acc@0.5'} and 0.0 <= metrics['Acc@0.5'] <= 100.0
    # 19 val expressions: Acc@0.5 is a multiple of 100 / 19
    assert abs(metrics['Acc@0.5'] * 19 / 100 - round(metrics['Acc@0.5'] * 19 / 100)) < 1e-6
    after = model.state_dict()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name, value in after.items():
        moved = not torch.equal(before[name], value)
        if name.startswith(('backbone.', 'language_model.')):
            assert not moved, f'frozen encoder weight {name} changed'
    assert all(not torch.equal(before[n], after[n]) for n in trainable
               if n.startswith(('bbox_head.', 'neck.')))
    assert osp.isfile(osp.join(tmp_path, 'iter_4.pth'))
