"""The shared pretrained loader: official Swin layout, mmdet layout, and clear errors."""
import pytest
import torch


def _to_official_layout(state):
    """Inverse of mmdet's ``swin_converter``: mmdet keys -> microsoft/Swin-Transformer keys."""
    official = {}
    for k, v in state.items():
        if k.startswith('norm'):  # mmdet's per-stage output norms do not exist upstream
            continue
        if 'downsample.reduction' in k:
            out_c, in_c = v.shape
            v = v.reshape(out_c, in_c // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3], :].reshape(
                out_c, in_c)
        elif 'downsample.norm' in k:
            v = v.reshape(v.shape[0] // 4, 4).transpose(0, 1)[[0, 2, 1, 3], :].reshape(-1)
        k = (k.replace('stages.', 'layers.').replace('attn.w_msa.', 'attn.')
             .replace('ffn.layers.0.0.', 'mlp.fc1.').replace('ffn.layers.1.', 'mlp.fc2.')
             .replace('patch_embed.projection', 'patch_embed.proj'))
        official[k] = v
    # Present in the official release and dropped on load: classification head, final norm,
    # precomputed shifted-window masks.
    official['head.weight'] = torch.zeros(10, 256)
    official['norm.weight'] = torch.ones(256)
    official['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 49, 49)
    return official


@pytest.mark.parametrize('layout', ['official', 'mmdet'])
def test_pretrained_e3va_reproduces_trunk(build_small_swin, image_batch, tmp_path, layout):
    full = build_small_swin('full').eval()
    state = full.state_dict()
    path = str(tmp_path / 'swin.pth')
    if layout == 'official':
        torch.save({'model': _to_official_layout(state)}, path)
    else:
        torch.save({'state_dict': {'backbone.' + k: v for k, v in state.items()}}, path)
    e3va = build_small_swin('e3va', init_cfg=dict(type='Pretrained', checkpoint=path)).train()
    with torch.no_grad():
        ref = full(image_batch)
    assert all(torch.equal(a, b) for a, b in zip(ref, e3va(image_batch)))


def test_missing_trunk_keys_raise_with_list(build_small_swin, tmp_path):
    state = build_small_swin('full').state_dict()
    state.pop('stages.0.blocks.0.attn.w_msa.qkv.weight')
    path = str(tmp_path / 'partial.pth')
    torch.save(state, path)
    with pytest.raises(KeyError, match='stages.0.blocks.0.attn.w_msa.qkv.weight'):
        build_small_swin('e3va', init_cfg=dict(type='Pretrained', checkpoint=path))


def test_missing_file_and_foreign_checkpoint_raise(build_small_swin, tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        build_small_swin('e3va', init_cfg=dict(type='Pretrained', checkpoint='nowhere.pth'))
    path = str(tmp_path / 'resnet.pth')
    torch.save({'conv1.weight': torch.zeros(1)}, path)
    with pytest.raises(KeyError, match='no Swin trunk weights'):
        build_small_swin('frozen', init_cfg=dict(type='Pretrained', checkpoint=path))


def test_position_tables_interpolated_to_a_larger_window(build_small_swin, tmp_path):
    state = build_small_swin('full').state_dict()  # window 7: (2*7-1)**2 = 169 rows
    path = str(tmp_path / 'w7.pth')
    torch.save(state, path)
    model = build_small_swin('e3va', window_size=12,
                             init_cfg=dict(type='Pretrained', checkpoint=path))
    key = 'stages.0.blocks.0.attn.w_msa.relative_position_bias_table'
    assert model.state_dict()[key].shape == (23 * 23, 1)
    # bicubic resampling keeps the table's mean close to the source's
    assert torch.allclose(model.state_dict()[key].mean(), state[key].mean(), atol=5e-3)
    torch.testing.assert_close(model.state_dict()['stages.0.blocks.0.attn.w_msa.qkv.weight'],
                               state['stages.0.blocks.0.attn.w_msa.qkv.weight'])


def test_deeper_checkpoint_raises_instead_of_dropping_blocks(build_small_swin, tmp_path):
    path = str(tmp_path / 'deep.pth')
    torch.save(build_small_swin('full', depths=(2, 2, 4, 2)).state_dict(), path)
    with pytest.raises(KeyError, match='no place'):
        build_small_swin('e3va', init_cfg=dict(type='Pretrained', checkpoint=path))
