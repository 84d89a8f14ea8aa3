"""custom_imports is all an E3VA config needs (every config is built in test_all_configs.py)."""
import os.path as osp
import subprocess
import sys

import pytest

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


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
