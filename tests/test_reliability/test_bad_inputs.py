"""Bad inputs and faults: one clear error naming the cause, and nothing in the work_dir lost.

One table (``CASES``), one parametrised test. Each case prepares files in its own ``work_dir``
(a copy of every input it reads lives there too), then runs one tool / dataset / model build /
training run that must fail. The test asserts:

* the error type (by class name along the raised type's MRO, so the table also runs against
  older code, where it fails with "DID NOT RAISE" or the wrong type instead of an ImportError);
* that the message (for ``SystemExit``: its text plus what the tool wrote to stderr) names the
  cause (a regular expression per case), and optionally does not contain a misleading hint;
* that every file present in the work_dir before the call still exists with the same bytes
  (new files, such as logs, are allowed), plus a case-specific check where the case says so.

Cases marked with a finding number reproduce issue 12's findings 1-10; cases ``i20-*`` issue 20's
silent and unclear cases (those whose fix is a working run are in ``test_silent_cases.py``). The
behaviours that are not errors (the ground tool's stdout, ``cost_summary.json`` across resume,
quiet logs, the degenerate-box warning) are tested below the table.
"""
import contextlib
import glob
import hashlib
import io
import json
import os
import os.path as osp
import re
import shutil
import sys
from typing import Callable, NamedTuple, Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, osp.join(REPO, 'tests', 'test_scale'))
import toy_scale as toy  # noqa: E402

BUNDLED = osp.join(REPO, 'data', 'bundled')
DEMO_DET = osp.join(REPO, 'configs', 'e3va',
                    'cascade-mask-rcnn_e3va-swin-mini_fpn_40i_bundled-coco.py')
DEMO_SEG = osp.join(REPO, 'configs', 'e3va', 'upernet_e3va-swin-mini_40i_bundled-seg-384x384.py')
M2IST_DEMO = osp.join(REPO, 'configs', 'm2ist', 'm2ist_minilm-r18_vl-enc2_1000i_bundled-refexp.py')
IMAGE = osp.join(BUNDLED, 'coco', 'images', 'voc.jpg')


# --------------------------------------------------------------------------- fault injection
@HOOKS.register_module(force=True)
class PoisonHook(Hook):
    """At iteration ``at_iter`` (1-based): ``'weight'`` sets the head's first weight to NaN
    before the forward (the loss turns NaN); ``'grad'`` makes the head's weight gradient inf
    while the loss stays finite."""

    priority = 'VERY_LOW'

    def __init__(self, at_iter: int, what: str = 'weight'):
        self.at_iter, self.what = at_iter, what

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 != self.at_iter:
            return
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        if self.what == 'weight':
            with torch.no_grad():
                model.head.weight[0, 0] = float('nan')
        else:
            model.head.weight.register_hook(lambda g: torch.full_like(g, float('inf')))


def project_guard_hooks():
    """The non-finite guard every project config carries (none in code that has no guard)."""
    return [h for h in Config.fromfile(DEMO_DET).get('custom_hooks', [])
            if h['type'] != 'TrainingCostHook']


# --------------------------------------------------------------------------- shared inputs
@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    """Built once: the toy config, a pretrained trunk, a trained run's full and adapter-only
    checkpoints, and a small random M2IST config + checkpoint."""
    root = tmp_path_factory.mktemp('shared')
    trunk = toy.write_trunk(str(root / 'trunk.pth'))
    config = toy.write_config(str(root / 'toy.py'), max_iters=2, interval=2, pretrained=trunk)
    cfg = Config.fromfile(config)
    cfg.default_hooks.checkpoint.save_adapter = True
    cfg.dump(config)
    toy.import_tool('train.py').main([config, '--work-dir', str(root / 'run')])
    from mmengine.registry import MODELS, init_default_scope
    m2ist = Config.fromfile(M2IST_DEMO)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(m2ist.model)
    m2ist_ckpt = str(root / 'm2ist.pth')
    torch.save({'state_dict': model.state_dict()}, m2ist_ckpt)
    nan_state = {k: v.clone() for k, v in model.state_dict().items()}
    for k, v in nan_state.items():
        if k.startswith('bbox_head') and v.is_floating_point():
            v.fill_(float('nan'))
    m2ist_nan = str(root / 'm2ist_nan.pth')
    torch.save({'state_dict': nan_state}, m2ist_nan)
    return dict(root=root, trunk=trunk, config=config, full=str(root / 'run' / 'iter_2.pth'),
                adapter=str(root / 'run' / 'adapter_iter_2.pth'), m2ist_ckpt=m2ist_ckpt,
                m2ist_nan=m2ist_nan)


class Ctx:
    """What a case sees: its ``work`` folder (the runs' work_dir), an ``inputs`` folder for the
    files it reads (outside the work_dir: mmengine dumps the config into the work_dir under the
    config's own name) and helpers to put inputs there. Both folders are checked."""

    def __init__(self, root, shared):
        self.root, self.shared = str(root), shared
        self.work, self.inputs = osp.join(self.root, 'work'), osp.join(self.root, 'inputs')
        os.makedirs(self.work)
        os.makedirs(self.inputs)

    def path(self, name):
        return osp.join(self.inputs, name)

    def wpath(self, name):
        return osp.join(self.work, name)

    def copy(self, key_or_path, name=None):
        src = self.shared.get(key_or_path, key_or_path)
        dst = self.path(name or osp.basename(src))
        shutil.copy(src, dst)
        return dst

    def write(self, name, data, work=False):
        path = self.wpath(name) if work else self.path(name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
            f.write(data)
        return path

    def toy_config(self, name='toy.py', **options):
        """The shared toy config with ``merge_from_dict(options)``, written into ``work``."""
        cfg = Config.fromfile(self.shared['config'])
        if options:
            cfg.merge_from_dict(options)
        path = self.path(name)
        cfg.dump(path)
        return path


def tool(relpath):
    return lambda *argv: toy.import_tool(relpath).main(list(argv))


class Case(NamedTuple):
    id: str
    setup: Callable  # Ctx -> zero-argument callable that must raise
    error: str  # expected exception class name (matched along the MRO)
    match: str  # regular expression the message must contain
    finding: Optional[int] = None  # issue 12 finding reproduced
    not_in: Optional[str] = None  # text the message must not contain
    check: Optional[Callable] = None  # Ctx -> None, after the call
    issue20: bool = False  # one of issue 20's silent or unclear cases


# --------------------------------------------------------------------------- case builders
def _train(ctx, *argv, config=None):
    return lambda: tool('train.py')(config or ctx.toy_config(), '--work-dir', ctx.work, *argv)


def nan_demo_config(ctx):
    """Finding 1 as reported: the E3VA demo with lr=1e6 turns NaN at iteration 2."""
    cfg = Config.fromfile(DEMO_DET)
    cfg.merge_from_dict({'optim_wrapper.optimizer.lr': 1e6, 'train_cfg.max_iters': 4,
                         'train_cfg.val_interval': 100, 'default_hooks.checkpoint.interval': 2,
                         'default_hooks.checkpoint.max_keep_ckpts': 1})
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h['type'] != 'TrainingCostHook']
    path = ctx.path('demo.py')
    cfg.dump(path)
    return _train(ctx, config=path)


def no_pth(ctx):
    assert not glob.glob(osp.join(ctx.work, '*.pth')), os.listdir(ctx.work)


def only_good_iter_2(ctx):
    """The last good checkpoint (iteration 2) is kept, finite; nothing later was written."""
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(ctx.work, '*.pth')))
    assert names == ['iter_2.pth'], names
    state = toy.load(ctx.wpath('iter_2.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def poisoned(ctx, what, guard=True):
    cfg_hooks = (project_guard_hooks() if guard else []) + [
        dict(type='PoisonHook', at_iter=3, what=what)]
    config = ctx.toy_config(**{'train_cfg.max_iters': 6, 'default_hooks.checkpoint.interval': 2,
                               'default_hooks.checkpoint.max_keep_ckpts': 1,
                               'default_hooks.checkpoint.save_adapter': False})
    cfg = Config.fromfile(config)
    cfg.custom_hooks = cfg_hooks
    cfg.dump(config)
    return _train(ctx, config=config)


def resume_empty_last_checkpoint(ctx):
    ctx.write('last_checkpoint', '', work=True)
    return _train(ctx, '--resume')


def resume_dangling_last_checkpoint(ctx):
    ctx.write('last_checkpoint', ctx.wpath('iter_99.pth'), work=True)
    return _train(ctx, '--resume')


def resume_from(ctx, key_or_bytes):
    path = (ctx.write('bad.pth', key_or_bytes) if isinstance(key_or_bytes, bytes)
            else ctx.copy(key_or_bytes, 'source.pth'))
    return _train(ctx, '--resume', path)


def truncated(ctx, key='full', name='truncated.pth'):
    data = open(ctx.shared[key], 'rb').read()
    return ctx.write(name, data[:len(data) // 2])


def toy_test(ctx, ckpt):
    config = ctx.toy_config()
    return lambda: tool('test.py')(config, ckpt, '--work-dir', ctx.work)


def other_arch_checkpoint(ctx):
    model = toy.build_toy_model(embed_dims=24, num_heads=(1, 2, 4, 8))
    path = ctx.path('other_arch.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def adapter_on_other_trunk(ctx):
    other = toy.write_trunk(ctx.path('other_trunk.pth'), seed=5)
    config = ctx.toy_config(**{'model.backbone.init_cfg.checkpoint': other})
    adapter = ctx.copy('adapter')
    return lambda: tool('test.py')(config, adapter, '--work-dir', ctx.work)


def full_to_adapter(ctx, out=None, extra=()):
    config, full = ctx.toy_config(), ctx.copy('full')
    return lambda: tool('model_converters/full_to_adapter.py')(config, full, out or full, *extra)


def full_to_adapter_link(ctx):
    config, full = ctx.toy_config(), ctx.copy('full')
    link = ctx.path('link.pth')
    os.symlink(full, link)
    return lambda: tool('model_converters/full_to_adapter.py')(config, full, link)


def full_to_adapter_existing(ctx):
    out = ctx.copy('adapter', 'out.pth')
    return full_to_adapter(ctx, out)


def full_to_adapter_random(ctx):
    config = ctx.toy_config()
    bad = ctx.write('random.pth', os.urandom(4096))
    return lambda: tool('model_converters/full_to_adapter.py')(config, bad, ctx.path('o.pth'))


def official_swin(ctx):
    torch.manual_seed(0)
    state = {'layers.0.blocks.0.attn.qkv.weight': torch.randn(6, 2)}
    path = ctx.path('swin_official.pth')
    torch.save({'model': state}, path)
    return path


def swin2mmdet_same(ctx):
    src = official_swin(ctx)
    return lambda: tool('model_converters/swin2mmdet.py')(src, src)


def swin2mmdet_existing(ctx):
    src, dst = official_swin(ctx), ctx.write('dst.pth', b'keep me')
    return lambda: tool('model_converters/swin2mmdet.py')(src, dst)


def transvg_same(ctx):
    src = ctx.write('detr.pth', b'')
    torch.save({'model': {}}, src)
    return lambda: tool('model_converters/transvg2mmsidetune.py')(src, src)


def ground(ctx, ckpt='m2ist_ckpt', out=None, image=None, extra=(), text='the man',
           device='cpu'):
    """tools/ground.py on the M2IST demo config; ``ckpt``: a shared key or a path."""
    config = ctx.path('m2ist.py')
    Config.fromfile(M2IST_DEMO).dump(config)
    if ckpt in ctx.shared:
        ckpt = ctx.copy(ckpt)
    image = image or ctx.copy(IMAGE)
    return lambda: tool('ground.py')(config, ckpt, '--image', image, '--text', text,
                                     '--out-file', out or ctx.wpath('out.png'), '--device',
                                     device, *extra)


def ground_out_is_image(ctx):
    image = ctx.copy(IMAGE)
    return ground(ctx, out=image, image=image)


def ground_existing_out(ctx):
    return ground(ctx, out=ctx.write('out.png', b'an earlier drawing', work=True))


def bench(ctx, *argv):
    return lambda: tool('bench.py')(*argv, '--out-dir', ctx.wpath('bench'))


def bench_existing(ctx):
    ctx.write('bench/bench.json', '[]', work=True)
    return bench(ctx, '--steps', '1')


# ---- data
def refexp(ctx, ann_file, **kwargs):
    from mmengine.registry import DATASETS
    cfg = dict(type='RefExpDataset', ann_file=ann_file, dataset_key='unc',
               data_prefix=dict(img_path=osp.join(BUNDLED, 'coco', 'images')), **kwargs)
    return lambda: DATASETS.build(cfg)


def refexp_json(ctx, edit):
    data = json.load(open(osp.join(BUNDLED, 'refexp', 'refexp_val.json')))
    edit(data)
    return refexp(ctx, ctx.write('refexp_val.json', json.dumps(data)))


def _box_outside(data):
    data['annotations'][3]['bbox'] = [450.0, 300.0, 120.0, 100.0]  # voc.jpg is 500 x 375


def _empty_caption(data):
    data['images'][2]['caption'] = '  '


def refexp_pth(ctx, entries):
    path = ctx.path('unc_val.pth')
    torch.save(entries, path)
    return refexp(ctx, path)


def coco(ctx, ann):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    path = ctx.write('instances.json', ann if isinstance(ann, (str, bytes)) else json.dumps(ann))
    cfg = dict(Config.fromfile(DEMO_DET).train_dataloader.dataset, ann_file=path,
               data_root=None, data_prefix=dict(img=osp.join(BUNDLED, 'coco', 'images') + '/'))
    return lambda: DATASETS.build(cfg)


def coco_all_degenerate(ctx):
    data = json.load(open(osp.join(BUNDLED, 'coco', 'annotations', 'instances.json')))
    for ann in data['annotations']:
        ann['bbox'][2] = 0.0
    return coco(ctx, data)


def corrupt_label_map(ctx):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    root = ctx.path('seg')
    shutil.copytree(osp.join(BUNDLED, 'seg'), root)
    with open(osp.join(root, 'labels', 'voc.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n damaged')
    cfg = Config.fromfile(DEMO_SEG).train_dataloader.dataset
    cfg.data_root = root
    cfg.pipeline = [t for t in cfg.pipeline if 'Load' in t['type']]

    def load_all():
        dataset = DATASETS.build(cfg)
        for i in range(len(dataset)):
            dataset[i]
    return load_all


def backbone(**kwargs):
    def build():
        from mmengine.registry import MODELS
        return MODELS.build(dict(toy.TOY_BACKBONE, **kwargs))
    return lambda ctx: build


def backbone_cfg(cfg):
    """A case building backbone config ``cfg`` as it is."""
    def build():
        from mmengine.registry import MODELS
        return MODELS.build(cfg)
    return lambda ctx: build


def method_cfg(cfg):
    """A case building tuning method config ``cfg``."""
    def build():
        from mmsidetune.tuners import build_method
        return build_method(cfg)
    return lambda ctx: build


def config_with(ctx, **options):
    return _train(ctx, config=ctx.toy_config(**options))


def resume_with_bad_cost_summary(ctx):
    config = ctx.toy_config(custom_hooks=[dict(type='TrainingCostHook')],
                            **{'train_cfg.max_iters': 4})
    full = ctx.copy('full', 'iter_2.pth')
    ctx.write('cost_summary.json', '{"iters": 2, "peak_', work=True)
    return lambda: tool('train.py')(config, '--work-dir', ctx.work, '--resume', full)


@HOOKS.register_module(force=True)
class UnhookAdaptersHook(Hook):
    """Model surgery the tuned backbone cannot follow: every forward hook of its trunk removed
    before training (the adapters stay in the model and in the optimizer)."""

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        for m in model.backbone.modules():
            m._forward_hooks.clear()


def swin_alias(kind, **options):
    """The toy Swin backbone as alias ``kind`` (no E3VA option) with ``options``."""
    cfg = {k: v for k, v in toy.TOY_BACKBONE.items() if k != 'adapter_rank'}
    return dict(cfg, type=kind, **options)


def adapters_cut_off(ctx):
    config = ctx.toy_config()
    cfg = Config.fromfile(config)
    cfg.model.backbone = swin_alias('AdapterSwinTransformer', adapter_hidden_dims=4)
    cfg.custom_hooks = project_guard_hooks() + [dict(type='UnhookAdaptersHook')]
    cfg.dump(config)
    return _train(ctx, config=config)


def resume_into(ctx, backbone=None, source='full', **options):
    """``--resume`` the shared E3VA checkpoint into the toy with another backbone."""
    config = ctx.toy_config(custom_hooks=project_guard_hooks(),
                            **{'train_cfg.max_iters': 3}, **options)
    if backbone is not None:
        cfg = Config.fromfile(config)
        cfg.model.backbone = backbone
        cfg.dump(config)
    src = source if osp.isfile(source) else ctx.copy(source, 'source.pth')
    return _train(ctx, '--resume', src, config=config)


def other_model_training_checkpoint(ctx):
    """A training checkpoint (meta, optimizer state) whose weights are another architecture's."""
    ckpt = toy.load(ctx.shared['full'])
    ckpt['state_dict'] = toy.build_toy_model(embed_dims=24).state_dict()
    path = ctx.path('other_model.pth')
    torch.save(ckpt, path)
    return resume_into(ctx, source=path)


def work_dir_in_use(ctx):
    import socket
    ctx.write('.mmsidetune_run.lock', json.dumps(dict(pid=os.getppid(),
                                                      host=socket.gethostname(),
                                                      started='earlier')), work=True)
    return _train(ctx)


def resnet_backbone(depth=18, **kwargs):
    return dict(type='TunedBackbone', module=dict(type='mmdet.ResNet', depth=depth,
                                                  base_channels=8, out_indices=(3, )),
                **kwargs)


def deeper_resnet_pretrained(ctx):
    from mmengine.registry import MODELS
    torch.manual_seed(0)
    deeper = MODELS.build(dict(type='mmdet.ResNet', depth=34, base_channels=8,
                               out_indices=(3, )))
    path = ctx.path('resnet34.pth')
    torch.save({'state_dict': deeper.state_dict()}, path)

    def build():
        MODELS.build(resnet_backbone(method='adapter', init_cfg=dict(
            type='Pretrained', checkpoint=path))).init_weights()
    return build


def ground_device(ctx, device):
    if device.startswith('cuda') and torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    return ground(ctx, device=device)


def huge_png(ctx):
    """A PNG whose header says 10000 x 10000 (the pixels are never decoded)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
    header = struct.pack('>IIBBBBB', 10000, 10000, 8, 2, 0, 0, 0)
    data = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
            + chunk(b'IDAT', zlib.compress(b'\0' * 100)) + chunk(b'IEND', b''))
    return ctx.write('huge.png', data)


CASES = [
    # -- finding 1: non-finite loss / gradient / weights
    Case('nan-loss-demo-config-lr-1e6', nan_demo_config, 'NonFiniteError',
         r'iteration 2 .*loss', 1, check=no_pth),
    Case('nan-loss-toy-lr-1e6', lambda c: config_with(c, **{'optim_wrapper.optimizer.lr': 1e6,
                                                           'custom_hooks': project_guard_hooks()}),
         'NonFiniteError', r'non-finite loss at iteration 2', 1, check=no_pth),
    Case('nan-loss-keeps-good-checkpoint', lambda c: poisoned(c, 'weight'), 'NonFiniteError',
         r'non-finite loss at iteration 3.*loss=nan', 1, check=only_good_iter_2),
    Case('inf-grad-finite-loss', lambda c: poisoned(c, 'grad'), 'NonFiniteError',
         r'non-finite gradients at iteration 3 .*head\.weight', 1, check=only_good_iter_2),
    Case('nan-weights-never-saved', lambda c: poisoned(c, 'weight', guard=False),
         'NonFiniteError', r'not saving the checkpoint of iteration/epoch 4: \d+ model tensors '
         r'hold NaN or inf', 1,
         check=only_good_iter_2),
    # -- finding 2: tools never overwrite their input; outputs need --force
    Case('full-to-adapter-out-is-input', full_to_adapter, 'SystemExit',
         r'never overwrites its own input', 2),
    Case('full-to-adapter-out-is-input-force', lambda c: full_to_adapter(c, extra=('--force', )),
         'SystemExit', r'never overwrites its own input', 2),
    Case('full-to-adapter-out-links-to-input', full_to_adapter_link, 'SystemExit',
         r'never overwrites its own input', 2),
    Case('full-to-adapter-existing-out', full_to_adapter_existing, 'SystemExit',
         r'out\.pth exists; pass --force', 2),
    Case('swin2mmdet-dst-is-src', swin2mmdet_same, 'SystemExit', r'never overwrites', 2),
    Case('swin2mmdet-existing-dst', swin2mmdet_existing, 'SystemExit', r'dst\.pth exists', 2),
    Case('transvg-dst-is-src', transvg_same, 'SystemExit', r'never overwrites', 2),
    Case('ground-out-file-is-image', ground_out_is_image, 'SystemExit', r'never overwrites', 2),
    Case('ground-existing-out-file', ground_existing_out, 'SystemExit',
         r'out\.png exists; pass --force', 2),
    Case('bench-existing-report', bench_existing, 'SystemExit', r'bench\.json exists', 2),
    # -- finding 3: ground.py refuses checkpoints that do not fit; non-finite box
    Case('ground-unrelated-checkpoint', lambda c: ground(c, c.copy('full', 'unrelated.pth')),
         'SystemExit', r'unrelated\.pth does not fit \w+: .*missing from the file, first: \[', 3),
    Case('ground-nan-checkpoint', lambda c: ground(c, 'm2ist_nan'), 'SystemExit',
         r'non-finite box', 3),
    Case('ground-empty-checkpoint', lambda c: ground(c, c.write('e.pth', b'')), 'SystemExit',
         r'e\.pth is an empty file', 3),
    # -- finding 4: test.py refuses checkpoints that do not fit
    Case('test-bare-backbone-file', lambda c: toy_test(c, c.copy('trunk')), 'SystemExit',
         r'trunk\.pth does not fit ToyTunedClassifier: \d+ of the model.s \d+ tensors missing',
         4),
    Case('test-other-architecture', lambda c: toy_test(c, other_arch_checkpoint(c)),
         'SystemExit', r'other_arch\.pth does not fit.*shape mismatches', 4),
    # -- finding 5: cost_summary.json is read, not silently replaced, on resume
    Case('resume-with-damaged-cost-summary', resume_with_bad_cost_summary, 'ValueError',
         r'cannot read .*cost_summary\.json', 5),
    # -- finding 6: unreadable checkpoints are named with the cause
    Case('test-empty-checkpoint', lambda c: toy_test(c, c.write('empty.pth', b'')),
         'SystemExit', r'empty\.pth is an empty file \(0 bytes\)', 6),
    Case('test-random-bytes-checkpoint',
         lambda c: toy_test(c, c.write('random.pth', os.urandom(4096))), 'SystemExit',
         r'random\.pth is not a PyTorch checkpoint', 6, not_in='file an issue'),
    Case('test-truncated-checkpoint', lambda c: toy_test(c, truncated(c)), 'SystemExit',
         r'truncated\.pth is damaged or truncated', 6),
    Case('resume-empty-last-checkpoint', resume_empty_last_checkpoint, 'SystemExit',
         r'last_checkpoint is empty', 6),
    Case('resume-dangling-last-checkpoint', resume_dangling_last_checkpoint, 'SystemExit',
         r'last_checkpoint names .*iter_99\.pth, which does not exist', 6),
    Case('resume-from-adapter-only', lambda c: resume_from(c, 'adapter'), 'SystemExit',
         r'source\.pth is an adapter-only checkpoint', 6),
    Case('resume-from-weights-file', lambda c: resume_from(c, 'trunk'), 'SystemExit',
         r'source\.pth is not a training checkpoint.*load_from', 6),
    Case('resume-from-empty-file', lambda c: resume_from(c, b''), 'SystemExit',
         r'bad\.pth is an empty file', 6),
    Case('full-to-adapter-random-bytes', full_to_adapter_random, 'SystemExit',
         r'random\.pth is not a PyTorch checkpoint', 6),
    Case('pretrained-trunk-truncated',
         lambda c: config_with(c, **{'model.backbone.init_cfg.checkpoint':
                                     truncated(c, 'trunk', 'trunk_cut.pth')}),
         'CheckpointReadError', r'trunk_cut\.pth is damaged or truncated', 6),
    # -- finding 7: bad data found at load time, named
    Case('refexp-json-box-outside-image', lambda c: refexp_json(c, _box_outside),
         'ValueError', r'refexp_val\.json image id \d+: box .* not inside its image .*voc\.jpg', 7),
    Case('refexp-pth-box-outside-image',
         lambda c: refexp_pth(c, [('voc.jpg', 0, [10, 10, 50, 50], 'ok', []),
                                  ('voc.jpg', 1, [480, 10, 60, 50], 'the dog', [])]),
         'ValueError', r'unc_val\.pth entry 1: box .* not inside its image', 7),
    Case('refexp-pth-missing-image',
         lambda c: refexp_pth(c, [('nope.jpg', 0, [10, 10, 50, 50], 'a cat', [])]),
         'FileNotFoundError', r'unc_val\.pth entry 0: image .*nope\.jpg not found', 7),
    Case('refexp-json-empty-file', lambda c: refexp(c, c.write('refexp_val.json', b'')),
         'ValueError', r'refexp_val\.json is empty \(0 bytes\)', 7),
    Case('refexp-json-not-json', lambda c: refexp(c, c.write('refexp_val.json', '{"images": [')),
         'ValueError', r'refexp_val\.json is not valid JSON', 7),
    Case('refexp-json-no-images',
         lambda c: refexp(c, c.write('refexp_val.json', json.dumps(
             dict(images=[], annotations=[], categories=[])))),
         'ValueError', r'refexp_val\.json holds no images', 7),
    Case('refexp-pth-random-bytes', lambda c: refexp(c, c.write('unc_val.pth', os.urandom(999))),
         'ValueError', r'cannot read annotation file .*unc_val\.pth', 7),
    Case('coco-empty-annotation-file', lambda c: coco(c, b''), 'ValueError',
         r'instances\.json is empty \(0 bytes\)', 7),
    Case('coco-no-images', lambda c: coco(c, dict(annotations=[], categories=[])), 'ValueError',
         r'instances\.json holds no "images"', 7),
    Case('coco-every-box-degenerate', coco_all_degenerate, 'ValueError',
         r'every one of the 28 boxes .* is degenerate', 7),
    Case('seg-corrupt-label-map', corrupt_label_map, 'ValueError',
         r'cannot read label map .*labels/voc\.png', 7, not_in='BytesIO'),
    # -- finding 8: bench validates its arguments, one line each
    Case('bench-batch-size-0', lambda c: bench(c, '--batch-size', '0'), 'SystemExit',
         r'--batch-size: must be at least 1, got 0', 8),
    Case('bench-img-size-10x10', lambda c: bench(c, '--img-size', '10x10'), 'SystemExit',
         r'--img-size: .10x10.: each side must be at least 32', 8),
    Case('bench-device-tpu', lambda c: bench(c, '--device', 'tpu'), 'SystemExit',
         r'--device: expected cpu, cuda or cuda:N', 8),
    Case('bench-methods-empty', lambda c: bench(c, '--methods', ','), 'SystemExit',
         r'--methods: empty method name', 8),
    Case('bench-methods-duplicate', lambda c: bench(c, '--methods', 'full,e3va,full'),
         'SystemExit', r"--methods: \['full'\] given more than once", 8),
    Case('bench-steps-0', lambda c: bench(c, '--steps', '0'), 'SystemExit',
         r'--steps: must be at least 1', 8),
    # -- finding 9: E3VA settings that leave adapters unused, with_cp
    Case('e3va-residual-unused-stage-0', backbone(highway='residual', out_indices=(1, 2, 3)),
         'ValueError', r'adapters of stages \[0\] reach no output', 9),
    Case('e3va-full-unused-last-stages', backbone(out_indices=(0, 1)), 'ValueError',
         r'adapters of stages \[2, 3\] reach no output', 9),
    Case('e3va-with-cp', backbone(with_cp=True), 'ValueError', r'with_cp=True has no effect', 9),
    # -- finding 10: the adapter mismatch message names only what tools offer
    Case('test-adapter-on-other-trunk', adapter_on_other_trunk, 'SystemExit',
         r'trained on other trunk weights.*init_cfg must name', 10, not_in='check_trunk'),
    # -- configs and arguments that were already handled (kept so they stay so)
    Case('train-config-not-found', lambda c: lambda: tool('train.py')(c.path('none.py')),
         'SystemExit', r'config not found: .*none\.py'),
    Case('refexp-json-empty-phrase', lambda c: refexp_json(c, _empty_caption), 'ValueError',
         r'refexp_val\.json image id \d+: empty referring expression'),
    Case('e3va-frozen-stages', backbone(frozen_stages=1), 'ValueError',
         r'frozen_stages=1'),
    Case('e3va-unknown-highway', backbone(highway='both'), 'ValueError',
         r'highway must be one of'),
    Case('test-checkpoint-not-found', lambda c: toy_test(c, c.path('none.pth')), 'SystemExit',
         r'checkpoint not found: .*none\.pth'),
    # -- issue 20: nothing trains in silence; the unclear cases get one line naming the cause
    Case('i20-adapters-without-gradient', adapters_cut_off, 'NoGradientError',
         r'of the \d+ trainable tensors of the tuning method received no gradient in training '
         r'iteration 1, first: \[.backbone\.adapters\.', check=no_pth, issue20=True),
    Case('i20-lora-alpha-0', backbone_cfg(swin_alias('LoRASwinTransformer', lora_alpha=0)),
         'ValueError', r'LoRA: alpha must be a finite number > 0 or None, got 0', issue20=True),
    Case('i20-adapter-zero-width',
         backbone_cfg(swin_alias('AdapterSwinTransformer', adapter_hidden_dims=0)),
         'ValueError', r'Adapter: hidden_dims must be a positive integer, got 0', issue20=True),
    Case('i20-adaptformer-scale-inf',
         backbone_cfg(swin_alias('AdaptFormerSwinTransformer', adapter_scale=float('inf'))),
         'ValueError', r'AdaptFormer: scale must be a finite number > 0, got inf', issue20=True),
    Case('i20-e3va-hidden-ratio-nan', backbone(adapter_hidden_ratio=float('nan')),
         'ValueError', r'E3VA: hidden_ratio must be a finite number > 0, got nan', issue20=True),
    Case('i20-m2ist-scale-0', method_cfg(dict(type='M2IST', scale=0.0)), 'ValueError',
         r'M2IST: scale must be a finite number > 0, got 0\.0', issue20=True),
    Case('i20-method-none', backbone_cfg(resnet_backbone(method=None)), 'TypeError',
         r'TunedBackbone: method must be a method name .* got None', issue20=True),
    Case('i20-method-8', backbone_cfg(resnet_backbone(method=8)), 'TypeError',
         r'TunedBackbone: method must be a method name .* got 8', issue20=True),
    Case('i20-swin-alias-rank', backbone_cfg(swin_alias('LoRandSwinTransformer', rank=16)),
         'TypeError', r"LoRandSwinTransformer: unknown options \['rank'\].*rank is spelled "
         r'adapter_rank here', issue20=True),
    Case('i20-resume-swaps-method',
         lambda c: resume_into(c, swin_alias('LoRandSwinTransformer', adapter_rank=4)),
         'CheckpointMismatchError', r'cannot resume from .*source\.pth: it was written from '
         r'another model \(TunedBackbone\(mmdet\.SwinTransformer, E3VA\)\) than this run builds '
         r'\(TunedBackbone\(mmdet\.SwinTransformer, LoRand\)\).*backbone\.adapters\..*'
         r'load_from=', check=no_pth, issue20=True),
    Case('i20-resume-into-lora', lambda c: resume_into(c, swin_alias('LoRASwinTransformer',
                                                                    lora_rank=4)),
         'CheckpointMismatchError', r'cannot resume from .*E3VA.*LoRA.*backbone\.lora\.',
         check=no_pth, issue20=True),
    Case('i20-resume-other-model', other_model_training_checkpoint, 'CheckpointMismatchError',
         r'cannot resume from .*other_model\.pth.*shape mismatches', check=no_pth,
         issue20=True),
    Case('i20-work-dir-in-use', work_dir_in_use, 'SystemExit',
         r'work_dir .*work is in use by pid \d+ on this host', check=no_pth, issue20=True),
    Case('i20-pretrained-deeper-resnet', deeper_resnet_pretrained, 'KeyError',
         r'ResNet: \d+ trunk weights in .*resnet34\.pth have no place in this model .*'
         r'layer1\.2\.', issue20=True),
    Case('i20-ground-emoji-phrase', lambda c: ground(c, text='\U0001F600\U0001F600'),
         'SystemExit', r"phrase .* has no token the tokenizer knows \(it reads \['\[UNK\]'\]\)",
         issue20=True),
    Case('i20-ground-device-cuda-without-cuda', lambda c: ground_device(c, 'cuda'),
         'SystemExit', r"--device: 'cuda': CUDA is not available on this machine",
         issue20=True),
    Case('i20-ground-device-gpu0', lambda c: ground_device(c, 'gpu0'), 'SystemExit',
         r"--device: expected cpu, cuda or cuda:N, got 'gpu0'", issue20=True),
    Case('i20-ground-image-is-folder', lambda c: ground(c, image=c.inputs), 'SystemExit',
         r'image .*inputs is a folder, not a file', issue20=True),
    Case('i20-ground-empty-image', lambda c: ground(c, image=c.write('empty.jpg', b'')),
         'SystemExit', r'image .*empty\.jpg is an empty file \(0 bytes\)', issue20=True),
    Case('i20-ground-huge-image', lambda c: ground(c, image=huge_png(c)), 'SystemExit',
         r'huge\.png is 10000 x 10000 pixels \(100\.0 MP\), above the limit of 40 MP',
         issue20=True),
    Case('i20-resume-from-folder', lambda c: _train(c, '--resume', c.inputs), 'SystemExit',
         r'inputs is a folder, not a checkpoint file', issue20=True),
    Case('cost-hook-unknown-memory-mode',
         lambda c: config_with(c, custom_hooks=[dict(type='TrainingCostHook', memory='gpu')]),
         'ValueError', r"memory must be one of .*'gpu'"),
]


def _snapshot(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = osp.join(dirpath, name)
            if osp.islink(path):
                out[path] = 'link -> ' + os.readlink(path)
            else:
                with open(path, 'rb') as f:
                    out[path] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input(case, shared, tmp_path):
    ctx = Ctx(tmp_path, shared)
    act = case.setup(ctx)
    before = _snapshot(ctx.root)
    stderr = io.StringIO()
    with pytest.raises(BaseException) as info, contextlib.redirect_stderr(stderr):
        act()
    err = info.value
    names = [t.__name__ for t in type(err).__mro__]
    message = str(err.code if isinstance(err, SystemExit) else err) + '\n' + stderr.getvalue()
    assert case.error in names, f'{type(err).__name__}: {message}'
    assert re.search(case.match, message, re.S), message
    if case.not_in:
        assert case.not_in not in message, message
    after = _snapshot(ctx.root)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f'lost or changed: {changed}'
    if case.check:
        case.check(ctx)


def test_the_table_covers_every_finding():
    """Every finding 1-10 keeps a case, and case ids are unique (pytest would silently suffix
    a repeated id, hiding which case failed)."""
    assert {c.finding for c in CASES} >= set(range(1, 11))
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
