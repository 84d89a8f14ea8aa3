"""tools/model_converters: swin2mmdet (official Swin -> mmdet layout) and bert_check."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.registry import MODELS

import toy_scale as toy

SMALL = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7)


def _official_layout(state):
    """tests/test_backbones' inverse of mmdet's swin_converter (mmdet -> official keys)."""
    path = osp.join(toy.REPO, 'tests', 'test_backbones', 'test_pretrained_loading.py')
    spec = importlib.util.spec_from_file_location('_pretrained_loading_helpers', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._to_official_layout(state)


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    torch.manual_seed(0)
    swin = MODELS.build(dict(type='FullSwinTransformer', **SMALL))
    swin.init_weights()
    state = swin.state_dict()
    path = str(tmp_path_factory.mktemp('swin') / 'official.pth')
    torch.save({'model': _official_layout(state)}, path)
    return path, state


def test_swin2mmdet_converts_and_lists_keys(official, tmp_path, capsys):
    src, state = official
    dst = str(tmp_path / 'mmdet.pth')
    tool = toy.import_tool('model_converters/swin2mmdet.py')
    tool.main([src, dst])
    out = capsys.readouterr().out
    assert 'layers->stages + attn->attn.w_msa' in out and 'dropped' in out
    converted = torch.load(dst, weights_only=True)['state_dict']
    trunk = {k: v for k, v in state.items() if not k.startswith('norm')}
    assert sorted(converted) == sorted('backbone.' + k for k in trunk)
    assert all(torch.equal(converted['backbone.' + k], v) for k, v in trunk.items())
    # the file loads as a pretrained trunk (mmsidetune's loader, which checks trunk keys)
    loaded = MODELS.build(dict(type='E3VASwinTransformer', **SMALL,
                               init_cfg=dict(type='Pretrained', checkpoint=dst)))
    loaded.init_weights()
    own = loaded.state_dict()
    assert all(torch.equal(own[k], v) for k, v in trunk.items())


def test_swin2mmdet_fails_listing_missing_and_unexpected(official, tmp_path, capsys):
    src, _ = official
    bad = torch.load(src, weights_only=True)['model']
    del bad['layers.1.blocks.1.mlp.fc1.weight']
    bad['layers.0.blocks.0.attn.extra.weight'] = torch.zeros(1)
    torch.save({'model': bad}, tmp_path / 'bad.pth')
    tool = toy.import_tool('model_converters/swin2mmdet.py')
    with pytest.raises(SystemExit, match='does not fit'):
        tool.main([str(tmp_path / 'bad.pth'), str(tmp_path / 'out.pth')])
    out = capsys.readouterr().out
    assert 'missing (1)' in out and 'stages.1.blocks.1.ffn.layers.0.0.weight' in out
    assert 'unexpected (1)' in out and 'stages.0.blocks.0.attn.w_msa.extra.weight' in out
    assert not osp.exists(tmp_path / 'out.pth')
    with pytest.raises(SystemExit, match='does not fit'):
        tool.main([src, str(tmp_path / 'out.pth'), '--arch', 'swin-t'])


@pytest.fixture(scope='module')
def tiny_bert(tmp_path_factory):
    """A random-init 2-layer BERT with a 30-word vocabulary, saved as a transformers folder."""
    from transformers import BertConfig, BertModel, BertTokenizer
    root = tmp_path_factory.mktemp('bert')
    words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'man', 'on', 'left', 'right']
    (root / 'vocab.txt').write_text('\n'.join(words + [f'w{i}' for i in range(20)]) + '\n')
    BertTokenizer(str(root / 'vocab.txt')).save_pretrained(str(root))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(str(root))
    return root


def test_bert_check_reports_and_fails_clearly(tiny_bert, tmp_path, capsys):
    tool = toy.import_tool('model_converters/bert_check.py')
    facts = tool.main([str(tiny_bert), '--max-length', '8'])
    assert (facts['hidden_size'], facts['num_hidden_layers']) == (32, 2)
    assert facts['output_shape'] == (1, 8, 32)
    assert facts['tokens'][:6] == ['[CLS]', 'the', 'man', 'on', 'the', 'left']
    assert 'bert_check: OK' in capsys.readouterr().out

    with pytest.raises(SystemExit, match='no config.json'):
        tool.main([str(tmp_path)])
    # weights of another shape than the config says: listed, exit status 1
    import shutil
    broken = tmp_path / 'broken'
    shutil.copytree(tiny_bert, broken)
    cfg = (broken / 'config.json').read_text().replace('"num_hidden_layers": 2',
                                                       '"num_hidden_layers": 3')
    (broken / 'config.json').write_text(cfg)
    with pytest.raises(SystemExit, match='do not fit'):
        tool.main([str(broken)])
    assert 'missing_keys' in capsys.readouterr().out
