"""Adapter-only checkpoints: round trip, clear errors, size for E3VA Swin-B, written during
training by AtomicCheckpointHook, converted from a full checkpoint, tested with tools/test.py."""
import os
import os.path as osp

import pytest
import torch
from mmengine.registry import MODELS

import toy_scale as toy
from mmsidetune.utils import (AdapterCheckpointError, adapter_state_dict, is_adapter_checkpoint,
                              load_adapter_checkpoint, read_adapter_checkpoint,
                              save_adapter_checkpoint)


def _pretrained(tmp_path):
    return toy.write_trunk(str(tmp_path / 'trunk.pth'))


def _tuned(trunk, **backbone):
    """A toy model on the pretrained trunk whose trainable tensors were changed (as by training)."""
    torch.manual_seed(7)
    model = toy.build_toy_model(init_cfg=dict(type='Pretrained', checkpoint=trunk), **backbone)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def test_round_trip_reproduces_outputs_exactly(tmp_path, images):
    trunk = _pretrained(tmp_path)
    tuned = _tuned(trunk)
    path = str(tmp_path / 'adapter.pth')
    meta = save_adapter_checkpoint(tuned, path)

    saved = torch.load(path, weights_only=True)['state_dict']  # safe to load: tensors only
    # parameter names are the state-dict keys (``backbone.norm3.*``, the upstream layout)
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert sorted(saved) == sorted(trainable) and 'backbone.norm3.weight' in saved
    assert not any(k.startswith(('backbone.stages.', 'backbone.patch_embed.'))
                   and '.highway.' not in k for k in saved)
    assert meta['pretrained'] == {'backbone': trunk}
    assert meta['tuning_methods'] == {'backbone': 'E3VASwinTransformer(e3va)'}
    assert meta['model_type'] == 'ToyTunedClassifier' and meta['mmsidetune_version']
    assert meta['params'] == {k: list(v.shape) for k, v in saved.items()}

    fresh = toy.build_toy_model(init_cfg=dict(type='Pretrained', checkpoint=trunk)).eval()
    with torch.no_grad():
        expected = tuned(images)
        assert not torch.equal(fresh(images), expected)
        load_adapter_checkpoint(fresh, path)
        assert torch.equal(fresh(images), expected)


def test_clear_errors_for_keys_shapes_and_trunk(tmp_path):
    trunk = _pretrained(tmp_path)
    path = str(tmp_path / 'adapter.pth')
    save_adapter_checkpoint(_tuned(trunk), path)
    ckpt = read_adapter_checkpoint(path)

    def fresh(**backbone):
        return toy.build_toy_model(init_cfg=dict(type='Pretrained', checkpoint=trunk), **backbone)

    dropped = dict(ckpt, state_dict={k: v for k, v in ckpt['state_dict'].items()
                                     if k != 'head.bias'})
    torch.save(dropped, tmp_path / 'missing.pth')
    with pytest.raises(AdapterCheckpointError,
                       match=r"1 of the model's \d+ trainable tensors missing.*head\.bias"):
        load_adapter_checkpoint(fresh(), str(tmp_path / 'missing.pth'))

    extra = dict(ckpt, state_dict={**ckpt['state_dict'], 'neck.conv.weight': torch.ones(1)})
    torch.save(extra, tmp_path / 'extra.pth')
    with pytest.raises(AdapterCheckpointError,
                       match=r"no place in the model's trainable tensors.*neck\.conv\.weight"):
        load_adapter_checkpoint(fresh(), str(tmp_path / 'extra.pth'))

    with pytest.raises(AdapterCheckpointError, match='shape mismatches'):
        load_adapter_checkpoint(fresh(adapter_rank=2), path)

    random_trunk = toy.build_toy_model()  # no pretrained trunk loaded
    with pytest.raises(AdapterCheckpointError, match='other trunk weights'):
        load_adapter_checkpoint(random_trunk, path)

    no_trunk = str(tmp_path / 'no_trunk.pth')  # saved from a random-init trunk (no init_cfg)
    save_adapter_checkpoint(toy.build_toy_model(), no_trunk)
    with pytest.raises(AdapterCheckpointError, match='no pretrained checkpoint'):
        load_adapter_checkpoint(toy.build_toy_model(), no_trunk)

    other_arch = fresh(window_size=8)  # other relative-position tables: another architecture
    with pytest.raises(AdapterCheckpointError, match='trunk architecture'):
        load_adapter_checkpoint(other_arch, path)

    torch.save({'state_dict': {}}, tmp_path / 'plain.pth')
    assert not is_adapter_checkpoint(str(tmp_path / 'plain.pth')) and is_adapter_checkpoint(path)
    with pytest.raises(AdapterCheckpointError, match='not an mmsidetune adapter-only'):
        load_adapter_checkpoint(fresh(), str(tmp_path / 'plain.pth'))
    with pytest.raises(FileNotFoundError):
        load_adapter_checkpoint(fresh(), str(tmp_path / 'none.pth'))


def test_e3va_swin_b_adapter_file_is_below_5_percent_of_full():
    """SPEC section 1: E3VA Swin-B (embed 128, depths 2-2-18-2) trains ~1.2 M of ~88 M."""
    model = MODELS.build(dict(type='E3VASwinTransformer', embed_dims=128, depths=(2, 2, 18, 2),
                              num_heads=(4, 8, 16, 32), window_size=7))
    adapter = adapter_state_dict(model)
    adapter_bytes = sum(v.numel() * v.element_size() for v in adapter.values())
    full_bytes = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    assert 1.1e6 < sum(v.numel() for v in adapter.values()) < 1.3e6
    assert adapter_bytes < 0.05 * full_bytes
    assert adapter_bytes / full_bytes < 0.015  # measured 1.3 %


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """2 iterations through tools/train.py with AtomicCheckpointHook(save_adapter=True)."""
    root = tmp_path_factory.mktemp('adapter_run')
    trunk = toy.write_trunk(str(root / 'trunk.pth'))
    config = toy.write_config(str(root / 'toy.py'), max_iters=2, interval=2, pretrained=trunk,
                              extra=("default_hooks.update(checkpoint=dict("
                                     "type='AtomicCheckpointHook', interval=2, by_epoch=False, "
                                     "save_adapter=True))"))
    work = str(root / 'work')
    toy.import_tool('train.py').main([config, '--work-dir', work])
    return config, osp.join(work, 'iter_2.pth'), osp.join(work, 'adapter_iter_2.pth'), root


def test_hook_writes_adapter_file_and_test_tool_accepts_it(trained):
    config, full, adapter, root = trained
    assert is_adapter_checkpoint(adapter)
    meta = read_adapter_checkpoint(adapter)['meta']
    assert meta['iter'] == 2
    assert os.path.getsize(adapter) < 0.25 * os.path.getsize(full)  # toy: the head is large
    test = toy.import_tool('test.py')
    from_full = test.main([config, full, '--work-dir', str(root / 'test_full')])
    from_adapter = test.main([config, adapter, '--work-dir', str(root / 'test_adapter')])
    assert from_adapter['logit_sum'] == from_full['logit_sum']
    # not vacuous: the untrained model gives other outputs
    untrained = str(root / 'untrained.pth')
    save_adapter_checkpoint(toy.build_toy_model(init_cfg=dict(
        type='Pretrained', checkpoint=str(root / 'trunk.pth'))), untrained)
    assert test.main([config, untrained, '--work-dir', str(root / 'test_untrained')])[
        'logit_sum'] != from_full['logit_sum']


def test_full_to_adapter_converter(trained, tmp_path, capsys):
    config, full, adapter, root = trained
    out = str(tmp_path / 'converted.pth')
    meta = toy.import_tool('model_converters/full_to_adapter.py').main([config, full, out])
    assert 'checked equal' in capsys.readouterr().out
    hooked, converted = read_adapter_checkpoint(adapter), read_adapter_checkpoint(out)
    assert meta['trunk_sha256'] == hooked['meta']['trunk_sha256']
    assert converted['state_dict'].keys() == hooked['state_dict'].keys()
    for k, v in hooked['state_dict'].items():
        assert torch.equal(converted['state_dict'][k], v), k

    # a config naming another pretrained trunk is refused
    other = toy.write_trunk(str(tmp_path / 'other_trunk.pth'), seed=5)
    with pytest.raises(SystemExit, match='differs from the pretrained trunk'):
        toy.import_tool('model_converters/full_to_adapter.py').main(
            [config, full, out, '--force', '--cfg-options',
             f'model.backbone.init_cfg.checkpoint={other}'])


def test_hook_removes_adapter_files_with_their_checkpoints(tmp_path):
    """max_keep_ckpts=1: each older iter_N.pth goes, and its adapter_iter_N.pth with it."""
    trunk = toy.write_trunk(str(tmp_path / 'trunk.pth'))
    config = toy.write_config(str(tmp_path / 'toy.py'), max_iters=3, interval=1, pretrained=trunk,
                              extra=("default_hooks.update(checkpoint=dict("
                                     "type='AtomicCheckpointHook', interval=1, by_epoch=False, "
                                     "max_keep_ckpts=1, save_adapter=True))"))
    work = tmp_path / 'work'
    toy.import_tool('train.py').main([config, '--work-dir', str(work)])
    assert sorted(p.name for p in work.glob('*.pth')) == ['adapter_iter_3.pth', 'iter_3.pth']


_DETECTOR = """
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)
default_scope = 'mmdet'
model = dict(
    backbone=dict(_delete_=True, type='TunedBackbone',
                  module=dict(type='SwinTransformer', embed_dims=16, depths=(2, 2, 2, 2),
                              num_heads=(1, 2, 4, 8), window_size=4, out_indices=(0, 1, 2, 3)),
                  method=dict(type='{method}', rank=4),
                  init_cfg=dict(type='Pretrained', checkpoint='{trunk}')),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=16, start_level=1),
    bbox_head=dict(num_classes=2, in_channels=16, feat_channels=16, stacked_convs=1))
"""


@pytest.mark.parametrize('method', ['E3VA', 'LoRA'])
def test_tuned_backbone_detector_saves_its_trainable_output_norms(tmp_path, method):
    """A TunedBackbone keeps its trunk under ``module`` but saves it in the upstream layout
    (``backbone.norm0.weight``, not ``backbone.module.norm0.weight``): the trained output norms
    must be in the adapter-only file, and the round trip bitwise."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    trunk = str(tmp_path / 'trunk.pth')
    torch.manual_seed(4)
    swin = MODELS.build(dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(2, 2, 2, 2),
                             num_heads=(1, 2, 4, 8), window_size=4, out_indices=(0, 1, 2, 3)))
    swin.init_weights()
    torch.save({'state_dict': {'backbone.' + k: v for k, v in swin.state_dict().items()}}, trunk)
    config = tmp_path / 'det.py'
    config.write_text(_DETECTOR.replace('{method}', method).replace('{trunk}', trunk))
    init_default_scope('mmdet')

    def build():
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(str(config)).model)
        model.init_weights()
        return model.eval()

    tuned = build()
    assert tuned.backbone.norm0.weight.requires_grad
    with torch.no_grad():  # as by training: every trainable tensor changes
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    path = str(tmp_path / 'adapter.pth')
    save_adapter_checkpoint(tuned, path)
    saved = torch.load(path, weights_only=True)['state_dict']
    assert {f'backbone.norm{i}.{w}' for i in range(4) for w in ('weight', 'bias')} <= set(saved)
    assert torch.equal(saved['backbone.norm0.weight'], tuned.backbone.norm0.weight)
    assert not any(k.startswith('backbone.module.') or k.startswith('backbone.stages.')
                   for k in saved)

    fresh = build()
    assert not torch.equal(fresh.backbone.norm0.weight, tuned.backbone.norm0.weight)
    load_adapter_checkpoint(fresh, path)
    expected = tuned.state_dict()
    assert list(fresh.state_dict()) == list(expected)
    assert all(torch.equal(v, expected[k]) for k, v in fresh.state_dict().items())
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out, ref = fresh(images, mode='tensor'), tuned(images, mode='tensor')
    assert all(torch.equal(a, b) for a, b in zip(out[0] + out[1], ref[0] + ref[1]))
