"""Write the checkpoint-compatibility fixture of ``tests/test_tuners/test_checkpoint_compat.py``.

Run once with the code of main at commit c8f627d (before issue 19 gave every trunk tensor one
name), from the repository root::

    PYTHONPATH=$PWD python tests/data/tuned_v1/make_fixture.py

For each tiny tuned backbone of :data:`MODELS` it writes, under this folder:

* ``<name>.full.pth``: ``{'meta': {...}, 'state_dict': ...}`` of a holder module with the backbone
  at ``backbone`` (the layout of an mmengine detector checkpoint: ``backbone.<key>``);
* ``<name>.adapter.pth``: the adapter-only file of the same holder
  (:func:`mmsidetune.utils.save_adapter_checkpoint`);
* ``<name>.out.pth``: ``{'input': (1, 3, 16, 16), 'outputs': [...]}``, the backbone's outputs in
  eval mode on that input.

The trainable tensors are set to seeded random values first (zero-initialised up-projections
would hide a wrong load). The trunk is the seeded random init (``torch.manual_seed(0)`` before
the build), so a model built the same way holds the same trunk.
"""
import os.path as osp

import torch
import torch.nn as nn
from mmengine.registry import MODELS as MM_MODELS

import mmsidetune  # noqa: F401
from mmsidetune.utils.adapter_checkpoint import save_adapter_checkpoint

HERE = osp.dirname(osp.abspath(__file__))

#: fixture name -> TunedBackbone config
MODELS = {
    'swin_e3va': dict(
        type='TunedBackbone',
        module=dict(type='mmdet.SwinTransformer', pretrain_img_size=16, embed_dims=8,
                    depths=(1, 1), num_heads=(1, 2), strides=(4, 2), window_size=4,
                    out_indices=(0, 1), mlp_ratio=2),
        method=dict(type='E3VA', rank=2)),
    'vit_lora': dict(
        type='TunedBackbone',
        module=dict(type='mmseg.VisionTransformer', img_size=16, patch_size=4, embed_dims=16,
                    num_layers=2, num_heads=2, mlp_ratio=2, out_indices=(1, ), final_norm=True),
        method=dict(type='LoRA', rank=2, targets=('q', 'v', 'fc1'))),
    'resnet_adapter': dict(
        type='TunedBackbone',
        module=dict(type='mmdet.ResNet', depth=18, num_stages=2, strides=(1, 2),
                    dilations=(1, 1), base_channels=4, out_indices=(0, 1)),
        method=dict(type='Adapter', hidden_dims=4)),
}


class Holder(nn.Module):
    """A detector-shaped holder: keys ``backbone.<key>``."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


def build(name):
    torch.manual_seed(0)
    model = MM_MODELS.build(MODELS[name])
    model.init_weights()
    return model


def main():
    for name in MODELS:
        model = build(name)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1 + p)
        model.eval()
        holder = Holder(model)
        torch.save({'meta': dict(note='written by make_fixture.py at c8f627d'),
                    'state_dict': holder.state_dict()}, osp.join(HERE, f'{name}.full.pth'))
        save_adapter_checkpoint(holder, osp.join(HERE, f'{name}.adapter.pth'))
        x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            outs = model(x)
        torch.save({'input': x, 'outputs': [o.clone() for o in outs]},
                   osp.join(HERE, f'{name}.out.pth'))
        print(name, sum(p.numel() for p in model.parameters()), [tuple(o.shape) for o in outs])


if __name__ == '__main__':
    main()
