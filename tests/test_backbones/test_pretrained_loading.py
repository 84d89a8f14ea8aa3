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
    official['head.weight'] = torch.zeros(10, 256)  # classification head: ignored
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
