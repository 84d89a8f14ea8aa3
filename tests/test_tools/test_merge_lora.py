"""LoRA merge for export (mmsidetune.tuners.merge, tools/model_converters/merge_lora.py): the
merged checkpoint loads into the untouched mmdet model with strict=True and reproduces the LoRA
model's outputs; bad input is refused.

Outputs are compared with ``allclose`` (float32), not bitwise: the LoRA model computes
``(W x + b) + s B (A x)`` and the merged one ``(W + s B A) x + b``, the same terms summed in
another order, so they differ in the last bits (about 1e-6 of the outputs here).
"""
import importlib.util
import os.path as osp

import pytest
import torch
from mmdet.models.backbones import SwinTransformer
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmsidetune  # noqa: F401
from mmsidetune.tuners import LoRAMergeError, TunedBackbone, lora_layers, merge_lora_state_dict
from mmsidetune.tuners.families import family_for_type
from mmsidetune.utils import save_adapter_checkpoint

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SWIN = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7,
            out_indices=(1, 2, 3))
RANK, ALPHA = 4, 8.0  # scaling 2: a wrong scaling would show
ATOL = RTOL = 1e-5

DETECTOR = """
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)
default_scope = 'mmdet'
model = dict(
    backbone=dict(_delete_=True, {backbone}),
    neck=dict(in_channels=[64, 128, 256], out_channels=32, start_level=0),
    bbox_head=dict(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1))
"""
SEGMENTOR = """
_base_ = 'mmseg::_base_/models/upernet_swin.py'
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(_delete_=True, {backbone}),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=16, num_classes=3,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=16, num_classes=3, norm_cfg=norm_cfg))
"""
BACKBONES = dict(
    tuned=(f"type='TunedBackbone', module=dict(type='SwinTransformer', **{SWIN!r}), "
           f"method=dict(type='LoRA', rank={RANK}, alpha={ALPHA})" '{init}'),
    alias=(f"type='LoRASwinTransformer', lora_rank={RANK}, lora_alpha={ALPHA}, "
           + ', '.join(f'{k}={v!r}' for k, v in SWIN.items()) + '{init}'))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'tool_merge_lora', osp.join(REPO, 'tools', 'model_converters', 'merge_lora.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_config(path, form='tuned', backbone=None, trunk=None):
    init = f", init_cfg=dict(type='Pretrained', checkpoint={trunk!r})" if trunk else ''
    text = BACKBONES[form].replace('{init}', init) if backbone is None else backbone
    with open(path, 'w') as f:
        f.write(DETECTOR.format(backbone=text))
    return str(path)


def _randomize_lora(model, seed=0):
    """Non-zero LoRA ``B`` (zero at init: the merge would change nothing; ``A`` keeps its random
    init) and trained-looking output norms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('.B'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif p.requires_grad and '.norm' in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _lora_detector(config, scope='mmdet'):
    init_default_scope(scope)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    _randomize_lora(model)
    return model.eval()


def _save_full(model, path):
    """A full checkpoint as mmengine writes it (meta, state_dict, training state)."""
    torch.save(dict(meta=dict(dataset_meta=dict(classes=('a', 'b', 'c')), iter=40, cfg='old'),
                    state_dict=model.state_dict(),
                    optimizer=dict(state={}, param_groups=[])), path)
    return str(path)


@pytest.fixture
def images():
    return torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(3))


def _assert_close(a, b):
    for u, v in zip(a, b):
        assert u.shape == v.shape
        assert torch.allclose(u, v, rtol=RTOL, atol=ATOL), (u - v).abs().max()


def test_merge_lora_state_dict_on_a_backbone(images):
    """Library level: the merged dict of a LoRA TunedBackbone is a plain mmdet Swin's, with
    W' = W + (alpha / r) B A, and the untouched SwinTransformer reproduces the LoRA outputs."""
    torch.manual_seed(0)
    lora = TunedBackbone(module=dict(type='mmdet.SwinTransformer', **SWIN),
                         method=dict(type='LoRA', rank=RANK, alpha=ALPHA))
    lora.init_weights()
    _randomize_lora(lora)
    lora.eval()
    state = merge_lora_state_dict(lora)

    plain = SwinTransformer(**SWIN)
    assert sorted(state) == sorted(plain.state_dict())  # no lora.* keys, upstream layout
    plain.load_state_dict(state, strict=True)
    plain.eval()
    key = 'stages.1.blocks.0.attn.w_msa.qkv.weight'
    update = lora.lora[1][0]['qkv']
    assert update.scaling == ALPHA / RANK
    w = lora.state_dict()[key]
    assert torch.allclose(state[key], w + 2.0 * update.B @ update.A, atol=1e-6)
    assert len(lora_layers(lora)) == 8 * 2  # 8 blocks x (qkv, proj)
    assert all(torch.equal(state[k], v) for k, v in lora.state_dict().items()
               if k in state and not k.endswith(('qkv.weight', 'proj.weight')))

    trunk = SwinTransformer(**SWIN)  # the same trunk without LoRA: the merge must matter
    trunk.load_state_dict({k: v for k, v in lora.state_dict().items() if k in state})
    trunk.eval()
    with torch.no_grad():
        expected, merged, unmerged = lora(images), plain(images), trunk(images)
    _assert_close(merged, expected)
    assert not torch.allclose(unmerged[-1], expected[-1], rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize('form', ['tuned', 'alias'])
def test_tool_writes_a_plain_detector(tmp_path, images, form, capsys):
    config = _write_config(tmp_path / 'lora.py', form)
    lora = _lora_detector(config)
    ckpt = _save_full(lora, tmp_path / 'iter_40.pth')
    out = str(tmp_path / 'merged.pth')
    meta = _tool().main([config, ckpt, out, '--check-size', '64'])
    log = capsys.readouterr().out
    assert 'merged 16 LoRA updates (rank 4, alpha 8.0' in log and 'loads it strictly' in log

    written = torch.load(out, weights_only=True)  # plain data: safe to load
    assert set(written) == {'meta', 'state_dict'}  # no optimizer state
    state = written['state_dict']
    assert not any('lora' in k for k in state)
    assert 'backbone.stages.0.blocks.0.attn.w_msa.qkv.weight' in state
    assert written['meta']['dataset_meta'] == dict(classes=('a', 'b', 'c'))
    info = written['meta']['lora_merged']
    assert info['source_kind'] == 'full' and info['backbones']['backbone']['layers'] == 16
    assert info['backbones']['backbone']['targets'] == ['proj', 'qkv']
    assert meta == written['meta']

    # the plain config next to OUT: upstream Swin, no wrapper, no method
    plain_cfg = Config.fromfile(str(tmp_path / 'merged.py'))
    assert plain_cfg.model.backbone.type in ('SwinTransformer', 'mmdet.SwinTransformer')
    assert 'method' not in plain_cfg.model.backbone and 'init_cfg' not in plain_cfg.model.backbone
    assert written['meta']['cfg'] == plain_cfg.pretty_text

    # the untouched mmdet backbone, strict
    backbone = SwinTransformer(**SWIN)
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                              if k.startswith('backbone.')}, strict=True)
    backbone.eval()
    # the whole untouched detector, from the written config, strict
    init_default_scope('mmdet')
    plain = MODELS.build(plain_cfg.model)
    assert type(plain.backbone) is SwinTransformer
    plain.load_state_dict(state, strict=True)
    plain.eval()
    with torch.no_grad():
        _assert_close(backbone(images), lora.backbone(images))
        scores, boxes = plain(images, mode='tensor')
        lora_scores, lora_boxes = lora(images, mode='tensor')
    _assert_close(scores + boxes, lora_scores + lora_boxes)


def test_tool_writes_a_plain_segmentor(tmp_path, images):
    """mmseg scope: ``SwinTransformer`` is mmseg's; the merged UperNet loads strictly into the
    untouched mmseg EncoderDecoder and gives the LoRA segmentor's logits."""
    from mmseg.models.backbones import SwinTransformer as MMSegSwin
    module = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7)
    config = tmp_path / 'upernet_lora.py'
    config.write_text(SEGMENTOR.format(backbone=(
        f"type='TunedBackbone', module=dict(type='SwinTransformer', **{module!r}), "
        f"method=dict(type='LoRA', rank={RANK}, alpha={ALPHA})")))
    lora = _lora_detector(str(config), scope='mmseg')
    assert type(lora.backbone)._upstream is MMSegSwin
    ckpt = _save_full(lora, tmp_path / 'iter_40.pth')
    out = str(tmp_path / 'merged.pth')
    _tool().main([str(config), ckpt, out, '--check-size', '64'])

    plain_cfg = Config.fromfile(str(tmp_path / 'merged.py'))
    init_default_scope('mmseg')
    plain = MODELS.build(plain_cfg.model)
    assert type(plain.backbone) is MMSegSwin
    plain.load_state_dict(torch.load(out, weights_only=True)['state_dict'], strict=True)
    plain.eval()
    with torch.no_grad():
        _assert_close([plain(images, mode='tensor')], [lora(images, mode='tensor')])


def test_tool_merges_an_adapter_only_file_onto_the_pretrained_trunk(tmp_path):
    torch.manual_seed(5)
    trunk = SwinTransformer(**SWIN)
    trunk.init_weights()
    trunk_path = str(tmp_path / 'trunk.pth')
    torch.save({'state_dict': {'backbone.' + k: v for k, v in trunk.state_dict().items()}},
               trunk_path)
    config = _write_config(tmp_path / 'lora.py', trunk=trunk_path)
    lora = _lora_detector(config)
    full = _save_full(lora, tmp_path / 'full.pth')
    adapter = str(tmp_path / 'adapter.pth')
    save_adapter_checkpoint(lora, adapter)

    tool = _tool()
    tool.main([config, full, str(tmp_path / 'from_full.pth'), '--no-check'])
    tool.main([config, adapter, str(tmp_path / 'from_adapter.pth'), '--no-check'])
    a = torch.load(tmp_path / 'from_full.pth', weights_only=True)
    b = torch.load(tmp_path / 'from_adapter.pth', weights_only=True)
    assert b['meta']['lora_merged']['source_kind'] == 'adapter-only'
    assert 'format' not in b['meta']  # not mistaken for an adapter-only file
    assert list(a['state_dict']) == list(b['state_dict'])
    assert all(torch.equal(v, b['state_dict'][k]) for k, v in a['state_dict'].items())


def test_tool_refuses_bad_input(tmp_path):
    tool = _tool()
    config = _write_config(tmp_path / 'lora.py')
    ckpt = _save_full(_lora_detector(config), tmp_path / 'full.pth')

    with pytest.raises(SystemExit, match=r'checkpoint not found: .*missing\.pth'):
        tool.main([config, str(tmp_path / 'missing.pth'), str(tmp_path / 'a.pth')])

    e3va = _write_config(tmp_path / 'e3va.py', backbone=(
        "type='E3VASwinTransformer', " + ', '.join(f'{k}={v!r}' for k, v in SWIN.items())))
    with pytest.raises(SystemExit, match=r'no LoRA-tuned backbone to merge.*e3va'):
        tool.main([e3va, ckpt, str(tmp_path / 'b.pth')])
    assert not osp.exists(tmp_path / 'b.pth') and not osp.exists(tmp_path / 'b.py')

    wrong = _write_config(tmp_path / 'wrong.py', backbone=BACKBONES['tuned'].replace('{init}', '')
                          .replace(f'rank={RANK}', 'rank=2'))
    with pytest.raises(SystemExit, match=r'full\.pth does not fit.*shape mismatches'):
        tool.main([wrong, ckpt, str(tmp_path / 'c.pth')])

    out = tmp_path / 'merged.pth'
    out.write_bytes(b'keep me')
    with pytest.raises(SystemExit, match=r'merged\.pth exists; pass --force'):
        tool.main([config, ckpt, str(out), '--no-check'])
    assert out.read_bytes() == b'keep me'
    with pytest.raises(SystemExit, match=r'the output .*lora\.py is the input'):
        tool.main([config, ckpt, str(tmp_path / 'lora.pth'), '--no-check'])
    tool.main([config, ckpt, str(out), '--no-check', '--force'])
    assert 'state_dict' in torch.load(out, weights_only=True)
    with pytest.raises(SystemExit, match=r'merged\.py exists; pass --force'):
        tool.main([config, ckpt, str(tmp_path / 'merged.pt'), '--no-check'])


def test_merge_refuses_a_detached_update():
    lora = TunedBackbone(module=dict(type='mmdet.SwinTransformer', **SWIN),
                         method=dict(type='LoRA', rank=RANK))
    lora.family.stages[0][0].linears['qkv']._forward_hooks.clear()
    with pytest.raises(LoRAMergeError, match=r'lora\.0\.0\.qkv is not attached to its layer '
                                             r'stages\.0\.blocks\.0\.attn\.w_msa\.qkv\.weight'):
        merge_lora_state_dict(lora)


VIT = dict(img_size=(32, 32), patch_size=8, embed_dims=32, num_layers=2, num_heads=2,
           out_indices=(0, 1), final_norm=True)


@pytest.mark.skipif(family_for_type('mmseg.VisionTransformer') is None,
                    reason='no ViT family registered (mmsidetune/tuners/families/vit.py)')
def test_merge_vit_every_target():
    """mmseg's VisionTransformer: for each LoRA target of the family (the MLP's linears, adapted
    by forward hooks, and the attention's q/k/v rows of the fused in_proj_weight and out_proj,
    adapted by parametrization), and for the default q+v (two updates on one weight), the merged
    weights in the untouched VisionTransformer give the LoRA model's outputs. A target whose
    update is merged but never applied (or applied but not merged) fails here."""
    from mmseg.models.backbones import VisionTransformer
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    module = dict(type='mmseg.VisionTransformer', **VIT)
    block = TunedBackbone(module=module, method='lora').family.stages[0][0]
    targets = [[t] for t in list(block.linears) + list(block.weights)] + [None]
    assert sorted(sum(targets[:-1], [])) == ['fc1', 'fc2', 'k', 'out', 'q', 'v']
    wrong = []
    for target in targets:
        torch.manual_seed(0)
        lora = TunedBackbone(module=module, method=dict(type='LoRA', rank=RANK, alpha=ALPHA,
                                                        targets=target))
        lora.init_weights()
        _randomize_lora(lora)
        lora.eval()
        state = merge_lora_state_dict(lora)
        plain = VisionTransformer(**VIT)
        plain.load_state_dict(state, strict=True)
        plain.eval()
        with torch.no_grad():
            expected, merged = lora(images), plain(images)
        if not all(torch.allclose(u, v, rtol=RTOL, atol=ATOL) for u, v in zip(merged, expected)):
            wrong.append(target)
    assert not wrong, f'merged outputs differ from the LoRA model for targets {wrong}'
