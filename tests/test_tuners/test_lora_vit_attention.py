"""LoRA on mmseg's ViT attention (docs/methods/lora.md): q and v rows of
``nn.MultiheadAttention``'s fused ``in_proj_weight`` by default, parametrized without changing
the module or its state-dict keys; gradients equal those of the merged weight."""
import copy

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

from mmsidetune.tuners import TunedBackbone

VIT = dict(type='VisionTransformer', img_size=(32, 32), patch_size=8, embed_dims=32,
           num_layers=2, num_heads=2, mlp_ratio=2, out_indices=(0, 1), final_norm=True)
RANK, ALPHA = 4, 8.0


def _lora(targets=None, dtype=torch.float32):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = TunedBackbone(module=copy.deepcopy(VIT),
                          method=dict(type='LoRA', rank=RANK, alpha=ALPHA, targets=targets))
    model.init_weights()
    torch.manual_seed(1)
    for p in model.method.parameters():
        p.data.normal_(0, 0.1)
    return model.to(dtype)


def test_default_targets_are_q_and_v_with_upstream_keys():
    model = _lora()
    assert [list(layer[0]) for layer in model.method] == [['q', 'v']] * 2
    d = VIT['embed_dims']
    assert sum(p.numel() for p in model.method.parameters()) == 2 * 2 * RANK * (d + d)
    init_default_scope('mmseg')
    plain = MODELS.build(copy.deepcopy(VIT))
    keys = set(model.state_dict())
    assert set(plain.state_dict()) == {k for k in keys if not k.startswith('lora.')}
    result = model.load_state_dict(plain.state_dict(), strict=False)  # upstream layout loads
    assert not result.unexpected_keys and all(k.startswith('lora.') for k in result.missing_keys)
    assert torch.equal(model.state_dict()['layers.0.attn.attn.in_proj_weight'],
                       plain.layers[0].attn.attn.in_proj_weight)


@pytest.mark.parametrize('targets', [None, ['k', 'out', 'fc2']])
def test_gradients_equal_those_of_the_merged_weight(targets):
    """d loss / d(B, A) = s (dL/dW')[rows] A^T and s B^T (dL/dW')[rows], with ``W'`` the
    merged weight as a leaf of the untouched ViT (float64)."""
    from mmsidetune.tuners import merge_lora_state_dict
    model = _lora(targets, torch.float64).eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(2))
    weights = torch.linspace(-1, 1, 2 * 32 * 4 * 4, dtype=torch.float64).view(2, 32, 4, 4)
    sum((o * weights).sum() for o in model(x)).backward()

    init_default_scope('mmseg')
    plain = MODELS.build(copy.deepcopy(VIT)).to(torch.float64)
    plain.eval()  # mmseg's VisionTransformer.train() returns None
    plain.load_state_dict(merge_lora_state_dict(model), strict=True)
    sum((o * weights).sum() for o in plain(x)).backward()

    blocks = model.family.stages
    scale = ALPHA / RANK
    checked = 0
    for i, stage in enumerate(model.method):
        for name, update in stage[0].items():
            spec = blocks[i][0].weights.get(name)
            if spec is None:  # fc1 / fc2, forward hooks
                layers = plain.layers[i].ffn.layers
                g = (layers[0][0] if name == 'fc1' else layers[1]).weight.grad
            else:  # q / k / v rows of in_proj_weight, out_proj.weight: parametrized
                mha = plain.layers[i].attn.attn
                g = (mha.out_proj.weight if name == 'out' else
                     mha.in_proj_weight).grad[spec[2] or slice(None)]
            torch.testing.assert_close(update.B.grad, scale * g @ update.A.detach().T)
            torch.testing.assert_close(update.A.grad, scale * update.B.detach().T @ g)
            checked += 1
    assert checked == 2 * (2 if targets is None else 3)
    # the trunk stays frozen (only the output norm, trained by LoRA, has gradients)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_unknown_targets_are_refused():
    with pytest.raises(ValueError, match='subset'):
        _lora(['qkv'])
