"""Every E3VA config builds; paper configs meet SPEC.md's budgets; custom_imports suffices."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
BUDGETS = {  # trainable backbone-side parameters, SPEC.md section 1
    'e3va-swin-b': 1.20e6,
    'e3va-swin-l': 1.79e6,
}


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(CONFIG_DIR, 'e3va', '*.py'))),
                         ids=osp.basename)
def test_config_builds_with_budget(path):
    cfg = Config.fromfile(path)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    model = registry.build(cfg.model)
    assert type(model.backbone).__name__ == 'E3VASwinTransformer'
    trainable = sum(p.numel() for p in model.backbone.parameters() if p.requires_grad)
    for key, budget in BUDGETS.items():
        if key in osp.basename(path):
            assert abs(trainable - budget) / budget < 0.02


@pytest.mark.parametrize('scope,config', [
    ('mmdet', 'cascade-mask-rcnn_e3va-swin-mini_fpn_40i_bundled-coco.py'),
    ('mmseg', 'upernet_e3va-swin-l-p4-w7_8xb2-160k_ade20k-512x512.py'),
])
def test_custom_imports_is_all_a_config_needs(scope, config):
    """A fresh interpreter that never imports mmsidetune itself builds the backbone."""
    code = (f'from mmengine.config import Config\n'
            f'from mmengine.registry import init_default_scope\n'
            f'from {scope}.registry import MODELS\n'
            f'cfg = Config.fromfile({osp.join(CONFIG_DIR, "e3va", config)!r})\n'
            f'init_default_scope({scope!r})\n'
            f'print(type(MODELS.build(cfg.model.backbone)).__name__)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == 'E3VASwinTransformer'
