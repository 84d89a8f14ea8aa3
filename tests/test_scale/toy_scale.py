"""A tiny E3VA classifier trained by mmengine's Runner, for the scale tests (CPU, seconds).

Imported by the tests and, through ``custom_imports``, by the training subprocesses they start
(``PYTHONPATH`` holds this folder). Registers ``ToyTunedClassifier``, ``ToyImageDataset`` and
the fault-injection hooks ``StallHook`` / ``KillDuringSaveHook``.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS
from torch.utils.data import Dataset

import mmsidetune  # noqa: F401

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
PYTHON = sys.executable

TOY_BACKBONE = dict(type='E3VASwinTransformer', embed_dims=16, depths=(2, 2, 2, 2),
                    num_heads=(1, 2, 4, 8), window_size=4, drop_path_rate=0.0, adapter_rank=4,
                    out_indices=(3, ))


@MODELS.register_module()
class ToyTunedClassifier(BaseModel):
    """Tuned Swin (or ResNet) backbone, mean pool, linear head: ``(B, 3, H, W)`` ->
    ``(B, num_classes)``."""

    def __init__(self, backbone: dict, num_classes: int = 3, init_cfg=None):
        super().__init__(data_preprocessor=dict(type='BaseDataPreprocessor'), init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        trunk = self.backbone
        width = trunk.num_features[-1] if hasattr(trunk, 'num_features') else trunk.feat_dim
        self.head = nn.Linear(width, num_classes)

    def forward(self, inputs, labels=None, mode='tensor'):
        logits = self.head(self.backbone(inputs)[-1].mean((2, 3)))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        if mode == 'predict':
            return [dict(logits=lg, label=int(y)) for lg, y in zip(logits, labels)]
        return logits


@METRICS.register_module()
class ToyLogitMetric(BaseMetric):
    """``logit_sum``: float64 sum of every logit (equal sums for equal outputs); ``accuracy``."""

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append((s['logits'].double().sum().item(),
                                 float(int(s['logits'].argmax()) == s['label'])))

    def compute_metrics(self, results):
        return dict(logit_sum=sum(r[0] for r in results),
                    accuracy=sum(r[1] for r in results) / len(results))


@DATASETS.register_module()
class ToyImageDataset(Dataset):
    """``length`` random images, each fixed by its index (no global RNG is used)."""

    def __init__(self, length: int = 16, size: int = 32, num_classes: int = 3):
        self.length, self.size, self.num_classes = length, size, num_classes

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 + i)
        return dict(inputs=torch.randn(3, self.size, self.size, generator=g),
                    labels=i % self.num_classes)


@HOOKS.register_module()
class StallHook(Hook):
    """After iteration ``at_iter`` (1-based; the checkpoint hook ran) touch ``marker``, hang."""

    priority = 'LOWEST'

    def __init__(self, at_iter: int, marker: str):
        self.at_iter, self.marker = at_iter, marker

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(600)


@HOOKS.register_module()
class KillDuringSaveHook(Hook):
    """SIGKILL the process while the checkpoint of iteration ``at_iter`` is being written: after
    its bytes are in the file, before the write is finished (at the ``fsync``)."""

    def __init__(self, at_iter: int):
        self.at_iter = at_iter

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['iter'] == self.at_iter:
            os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class DDPInspectHook(Hook):
    """After the Runner wrapped the model, write what DDP reduces to ``out`` (JSON, rank 0):
    the wrapper type, its logging data and the model's trainable / frozen tensor counts."""

    def __init__(self, out: str):
        self.out = out

    def before_train(self, runner):
        import json
        model = runner.model
        info = dict(wrapper=type(model).__name__)
        if hasattr(model, '_get_ddp_logging_data'):
            info.update(model._get_ddp_logging_data())
            params = list(model.module.parameters())
            info.update(
                trainable_tensors=sum(p.requires_grad for p in params),
                trainable_bytes=sum(p.numel() * p.element_size() for p in params
                                    if p.requires_grad),
                frozen_tensors=sum(not p.requires_grad for p in params))
        if runner.rank == 0:
            with open(self.out, 'w') as f:
                json.dump(info, f)


def write_config(path: str, max_iters: int = 6, interval: int = 2, batch_size: int = 4,
                 extra: str = '', pretrained: str = None) -> str:
    """Write the toy training config to ``path`` and return it; ``pretrained``: a trunk file
    for the backbone's ``init_cfg``."""
    backbone = dict(TOY_BACKBONE)
    if pretrained:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
    text = f'''
custom_imports = dict(imports=['mmsidetune', 'toy_scale'], allow_failed_imports=False)
model = dict(type='ToyTunedClassifier', backbone={backbone!r})
test_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ToyImageDataset', length=8))
test_evaluator = dict(type='ToyLogitMetric')
test_cfg = dict(type='TestLoop')
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ToyImageDataset', length=16))
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters})
optim_wrapper = dict(constructor='TrainableOptimWrapperConstructor',
                     optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
    dict(type='MultiStepLR', milestones=[4], gamma=0.5, by_epoch=False)]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval={interval}, by_epoch=False))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
log_level = 'WARNING'
{extra}
'''
    with open(path, 'w') as f:
        f.write(text)
    return path


def env():
    """Environment for training subprocesses: this worktree and this folder importable."""
    e = dict(os.environ, OMP_NUM_THREADS='1',
             PYTHONPATH=os.pathsep.join([REPO, HERE, os.environ.get('PYTHONPATH', '')]))
    e.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    return e


def train(config: str, work_dir: str, *args, log: str = None, **popen):
    """Start ``tools/train.py`` in a subprocess (returns the Popen); output goes to ``log``."""
    out = open(log or osp.join(osp.dirname(config), osp.basename(work_dir) + '.log'), 'w')
    return subprocess.Popen([PYTHON, osp.join(REPO, 'tools', 'train.py'), config,
                             '--work-dir', work_dir, *args],
                            cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT, **popen)


def mim_train(config: str, work_dir: str, *args, log: str):
    """``mim train mmdet CONFIG --work-dir DIR ...`` (mmdet's tools/train.py), in a subprocess."""
    mim = osp.join(osp.dirname(PYTHON), 'mim')
    with open(log, 'w') as out:
        return subprocess.run([mim, 'train', 'mmdet', config, '--work-dir', work_dir, *args],
                              cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT,
                              timeout=180).returncode


def load(path: str) -> dict:
    """Load one of our own (trusted) mmengine checkpoints."""
    return torch.load(path, map_location='cpu', weights_only=False)



def build_toy_model(**backbone) -> ToyTunedClassifier:
    """The toy model (``backbone`` overrides :data:`TOY_BACKBONE`), after ``init_weights()``."""
    model = MODELS.build(dict(type='ToyTunedClassifier', backbone={**TOY_BACKBONE, **backbone}))
    model.init_weights()
    return model


def write_trunk(path: str, seed: int = 123) -> str:
    """A "pretrained" trunk file for the toy backbone: mmdet backbone layout, trunk keys only."""
    torch.manual_seed(seed)
    backbone = MODELS.build(TOY_BACKBONE)
    backbone.init_weights()
    trunk = {k: v for k, v in backbone.state_dict().items()
             if k.startswith(('patch_embed.', 'stages.'))}
    torch.save({'state_dict': {'backbone.' + k: v for k, v in trunk.items()}}, path)
    return path


def import_tool(relpath: str):
    """Import a script under tools/ as a module (to call its ``main(argv)`` in-process)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'tool_' + relpath.replace('/', '_')[:-3], osp.join(REPO, 'tools', relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
