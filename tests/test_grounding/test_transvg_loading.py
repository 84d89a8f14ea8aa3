"""TransVG DETR-R50 checkpoint keys -> DETRVisionEncoder, on a synthetic state dict whose key
layout follows TransVG/DETR's naming (torchvision ResNet under backbone.0.body, nn.Transformer-
style encoder layers), with shapes taken from our ResNet-50 + 6-layer d=256 encoder."""
import argparse
import re

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

from mmsidetune.grounding import load_transvg_detr


def _transvg_name(ours: str) -> str:
    """Our key -> the key TransVG's detr-r50-*.pth uses (written from TransVG's module names)."""
    layer = r'transformer.encoder.layers.\1.'
    rules = [(r'^resnet\.', 'backbone.0.body.'),
             (r'^encoder\.layers\.(\d+)\.self_attn\.attn\.', layer + 'self_attn.'),
             (r'^encoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.', layer + 'linear1.'),
             (r'^encoder\.layers\.(\d+)\.ffn\.layers\.1\.', layer + 'linear2.'),
             (r'^encoder\.layers\.(\d+)\.norms\.0\.', layer + 'norm1.'),
             (r'^encoder\.layers\.(\d+)\.norms\.1\.', layer + 'norm2.')]
    for pattern, repl in rules:
        if re.match(pattern, ours):
            return re.sub(pattern, repl, ours)
    assert ours.startswith('input_proj.'), ours
    return ours


@pytest.fixture(scope='module')
def encoder():
    init_default_scope('mmdet')
    return MODELS.build(dict(type='DETRVisionEncoder'))  # ResNet-50, 6 layers, d=256


@pytest.fixture
def transvg_state(encoder):
    g = torch.Generator().manual_seed(0)
    state = {_transvg_name(k): torch.randn(v.shape, generator=g)
             for k, v in encoder.state_dict().items() if not k.endswith('num_batches_tracked')}
    # DETR parts the encoder does not have
    state['transformer.decoder.layers.0.linear1.weight'] = torch.zeros(2048, 256)
    state['query_embed.weight'] = torch.zeros(100, 256)
    state['class_embed.weight'] = torch.zeros(92, 256)
    return state


def test_real_key_layout_loads_every_tensor(encoder, transvg_state):
    assert 'backbone.0.body.layer4.2.conv3.weight' in transvg_state
    assert 'backbone.0.body.layer1.0.downsample.1.running_var' in transvg_state
    assert 'transformer.encoder.layers.5.self_attn.in_proj_weight' in transvg_state
    assert 'transformer.encoder.layers.5.self_attn.out_proj.bias' in transvg_state
    report = load_transvg_detr(encoder, {'model': transvg_state})
    assert len(report['ignored']) == 3
    own = encoder.state_dict()
    for key, value in own.items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(value, transvg_state[_transvg_name(key)]), key
    assert torch.equal(own['encoder.layers.3.ffn.layers.0.0.weight'],
                       transvg_state['transformer.encoder.layers.3.linear1.weight'])


def test_missing_and_unexpected_keys_are_listed(encoder, transvg_state):
    del transvg_state['transformer.encoder.layers.2.norm2.bias']
    del transvg_state['input_proj.weight']
    transvg_state['transformer.encoder.layers.0.extra.weight'] = torch.zeros(1)
    transvg_state['text_model.embeddings.weight'] = torch.zeros(1)
    with pytest.raises(KeyError) as err:
        load_transvg_detr(encoder, transvg_state)
    msg = str(err.value)
    assert 'missing keys (2)' in msg and 'encoder.layers.2.norms.1.bias' in msg
    assert 'input_proj.weight' in msg
    assert 'unexpected keys (2)' in msg and 'text_model.embeddings.weight' in msg
    assert 'transformer.encoder.layers.0.extra.weight' in msg


def test_shape_mismatch_is_reported(encoder, transvg_state):
    transvg_state['input_proj.weight'] = torch.zeros(128, 2048, 1, 1)
    with pytest.raises(ValueError, match='input_proj.weight'):
        load_transvg_detr(encoder, transvg_state)


def test_missing_file_raises(encoder, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_transvg_detr(encoder, str(tmp_path / 'detr-r50-unc.pth'))


def test_prefix_of_a_whole_transvg_model(encoder, transvg_state):
    prefixed = {'visumodel.' + k: v for k, v in transvg_state.items()}
    prefixed['textmodel.bert.embeddings.word_embeddings.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='textmodel'):  # other parts are not silently dropped
        load_transvg_detr(encoder, prefixed, prefix='visumodel.')
    del prefixed['textmodel.bert.embeddings.word_embeddings.weight']
    load_transvg_detr(encoder, prefixed, prefix='visumodel.')


def test_converter_tool_round_trip(encoder, transvg_state, tmp_path, repo_root, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'transvg2mmsidetune', f'{repo_root}/tools/model_converters/transvg2mmsidetune.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    src, dst = tmp_path / 'detr-r50-unc.pth', tmp_path / 'out' / 'detr-r50-unc_m2ist.pth'
    # TransVG files carry training args: not loadable weights-only
    torch.save({'model': transvg_state, 'args': argparse.Namespace(lr=1e-4), 'epoch': 3}, src)
    with pytest.raises(RuntimeError, match='transvg2mmsidetune.py'):
        load_transvg_detr(encoder, str(src))
    tool.main([str(src), str(dst)])
    out = capsys.readouterr().out
    assert 'mapped  -> backbone.encoder.layers.5.norms.1.bias' in out
    assert 'ignored    query_embed.weight' in out
    converted = torch.load(dst, weights_only=True)
    assert set(converted['state_dict']) == {
        'backbone.' + k for k in encoder.state_dict() if not k.endswith('num_batches_tracked')}
    load_transvg_detr(encoder, str(dst))  # the converted file loads weights-only
    assert torch.equal(encoder.state_dict()['resnet.conv1.weight'],
                       transvg_state['backbone.0.body.conv1.weight'])
