"""Convert TransVG's DETR-R50 checkpoint (``detr-r50-unc.pth``...) for M2IST's vision encoder.

    python tools/model_converters/transvg2mmsidetune.py SRC DST [--prefix visumodel.] [--force]

Reads SRC (TransVG / DETR key layout; unpickled fully, so only for files you trust), maps the
ResNet (``backbone.0.body.*``), ``input_proj`` and DETR encoder keys onto
``DETRVisionEncoder`` (mmsidetune.grounding.transvg), checks them against a ResNet-50 + 6-layer
d=256 encoder, prints every mapping and the ignored DETR decoder/head keys, and writes DST as a
weights-only file ``{'state_dict': {'backbone.<key>': tensor}, 'meta': ...}``. Use DST as
``model.backbone.checkpoint`` (or as ``load_from``). DST is never SRC; an existing DST is replaced
only with ``--force``, atomically.
"""
import argparse
import os.path as osp
import sys

from mmengine.registry import MODELS, init_default_scope

import mmsidetune  # noqa: F401  (registers the modules)
from mmsidetune.grounding.transvg import CONVERTER_TAG, convert_transvg_detr, load_transvg_detr
from mmsidetune.utils import CheckpointReadError, read_checkpoint_file
from mmsidetune.utils.atomic_io import atomic_torch_save, check_output_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help="TransVG DETR checkpoint, e.g. detr-r50-unc.pth")
    parser.add_argument('dst', help='output .pth')
    parser.add_argument('--prefix', default='',
                        help="key prefix of the DETR part ('visumodel.' for a whole TransVG model)")
    parser.add_argument('--force', action='store_true', help='replace an existing DST')
    parser.add_argument('--embed-dims', type=int, default=256)
    parser.add_argument('--num-layers', type=int, default=6)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.src):
        sys.exit(f'transvg2mmsidetune: checkpoint not found: {args.src}')
    try:
        check_output_path(args.dst, (args.src, ), args.force)
        ckpt = read_checkpoint_file(args.src, 'cpu', weights_only=False)  # a file the user named
    except (ValueError, OSError, CheckpointReadError) as e:
        sys.exit(f'transvg2mmsidetune: {e}')
    state = ckpt.get('model', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        sys.exit(f'transvg2mmsidetune: {args.src} holds no state dict')
    mapped, ignored, _ = convert_transvg_detr(state, args.prefix)  # unexpected: checked below
    for target in sorted(mapped):
        print(f'mapped  -> backbone.{target}  {tuple(mapped[target].shape)}')
    for key in ignored:
        print(f'ignored    {key}  (DETR decoder/head, not part of the encoder)')
    init_default_scope('mmdet')
    encoder = MODELS.build(dict(type='DETRVisionEncoder', embed_dims=args.embed_dims,
                                num_layers=args.num_layers))
    try:  # strict check: lists every missing / unexpected key and shape mismatch
        load_transvg_detr(encoder, {'model': state}, prefix=args.prefix, logger=None)
    except (KeyError, ValueError) as e:
        sys.exit(f'transvg2mmsidetune: {e}')
    out = dict(state_dict={f'backbone.{k}': v.clone() for k, v in mapped.items()},
               meta=dict(converter=CONVERTER_TAG, source=osp.basename(args.src)))
    atomic_torch_save(out, args.dst)  # never a half-written DST
    print(f'transvg2mmsidetune: {len(mapped)} tensors mapped, {len(ignored)} ignored '
          f'-> {args.dst}')


if __name__ == '__main__':
    main()
