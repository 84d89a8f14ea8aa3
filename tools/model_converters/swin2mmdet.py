"""Convert an official Swin Transformer checkpoint (microsoft/Swin-Transformer) to the mmdet /
mmseg backbone key layout.

    python tools/model_converters/swin2mmdet.py SRC DST [--arch swin-b] [--verbose] [--trust] \
        [--force]

mmsidetune's backbones read official files directly (``init_cfg=dict(type='Pretrained',
checkpoint=SRC)``), so this tool is for checking a download and for other code: DST holds
``{'state_dict': {'backbone.<mmdet key>': tensor}}``, which mmdet's and mmseg's own Swin
backbones, mmsidetune's loader and ``torch.load(weights_only=True)`` all read. The conversion is
the one the loader uses (``load_swin_state_dict``: mmdet's ``swin_converter``). The architecture
(embedding width, depths, heads, window) is read from the file, or checked against ``--arch``;
the converted keys are compared with a Swin built with it: any missing, unexpected or
shape-mismatched key is listed and the tool exits with status 1. The classification head, the
final ``norm`` and the precomputed ``attn_mask`` buffers of the release are dropped (listed).
DST is never SRC; an existing DST is replaced only with ``--force``, atomically.
"""
import argparse
import pickle
import re
import sys
from collections import Counter, OrderedDict

import torch
from mmdet.models.backbones.swin import SwinTransformer
from mmengine.runner.checkpoint import CheckpointLoader

import mmsidetune  # noqa: F401
from mmsidetune.tuners import load_swin_state_dict
from mmsidetune.utils import trust_checkpoint
from mmsidetune.utils.atomic_io import atomic_torch_save, check_output_path

ARCHS = {
    'swin-t': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'swin-s': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'swin-b': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'swin-l': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}
DROPPED = re.compile(r'^(head\.|norm\.)|attn_mask$')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official Swin checkpoint, e.g. '
                        'swin_base_patch4_window7_224_22k.pth')
    parser.add_argument('dst', help='output file (mmdet/mmseg layout)')
    parser.add_argument('--arch', choices=sorted(ARCHS),
                        help='expected architecture (default: read from the file)')
    parser.add_argument('--verbose', action='store_true', help='print every key mapping')
    parser.add_argument('--force', action='store_true', help='replace an existing DST')
    parser.add_argument('--trust', action='store_true',
                        help='fully unpickle SRC (only for files you trust; official releases '
                             'load without it)')
    return parser.parse_args(argv)


def infer_arch(state) -> dict:
    """Swin arguments read off converted (mmdet-layout) weights."""
    depths = []
    for i in range(4):
        blocks = {int(m.group(1)) for k in state
                  for m in [re.match(rf'stages\.{i}\.blocks\.(\d+)\.', k)] if m}
        depths.append(max(blocks) + 1 if blocks else 0)
    heads = [state[f'stages.{i}.blocks.0.attn.w_msa.relative_position_bias_table'].shape[1]
             for i in range(4) if depths[i]]
    table = state['stages.0.blocks.0.attn.w_msa.relative_position_bias_table'].shape[0]
    embed = state['patch_embed.projection.weight'].shape[0]
    return dict(embed_dims=embed, depths=tuple(depths), num_heads=tuple(heads),
                window_size=(int(round(table**0.5)) + 1) // 2,
                mlp_ratio=state['stages.0.blocks.0.ffn.layers.0.0.weight'].shape[0] // embed)


def _rule(old: str, new: str) -> str:
    if old == new:
        return 'kept'
    parts = [what for what, hit in (('layers->stages', old.startswith('layers.')),
                                    ('attn->attn.w_msa', '.attn.' in old),
                                    ('mlp->ffn', '.mlp.' in old),
                                    ('PatchMerging unfold order', '.downsample.' in old),
                                    ('proj->projection', old.startswith('patch_embed.proj')))
             if hit]
    return ' + '.join(parts) or 'renamed'


def main(argv=None) -> OrderedDict:
    """Convert; returns the converted state (mmdet keys without the ``backbone.`` prefix)."""
    args = parse_args(argv)
    try:
        check_output_path(args.dst, (args.src, ), args.force)
    except (ValueError, OSError) as e:
        sys.exit(f'swin2mmdet: {e}')
    try:
        if args.trust:
            trust_checkpoint(args.src)
            ckpt = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
        else:
            ckpt = torch.load(args.src, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        sys.exit(f'swin2mmdet: {args.src} not found')
    except pickle.UnpicklingError as e:  # torch's refusal names the pickled class
        sys.exit(f'swin2mmdet: cannot read {args.src} with weights_only=True ({e}); '
                 'pass --trust if you trust the file')
    except RuntimeError as e:  # not a torch file, or a truncated / damaged one
        sys.exit(f'swin2mmdet: cannot read {args.src}: {e}')
    official = ckpt.get('model', ckpt) if isinstance(ckpt, dict) else ckpt
    if not any(k.startswith('layers.') for k in official):
        sys.exit(f'swin2mmdet: {args.src} is not in the official Swin layout (no "layers." keys); '
                 f'first keys: {list(official)[:5]}')
    kept = OrderedDict((k, v) for k, v in official.items() if not DROPPED.search(k))
    dropped = [k for k in official if DROPPED.search(k)]
    try:
        state = load_swin_state_dict({'model': kept})
    except KeyError as e:
        sys.exit(f'swin2mmdet: {e}')
    arch = infer_arch(state)
    if args.arch:
        want = ARCHS[args.arch]
        diff = {k: (arch[k], v) for k, v in want.items() if arch[k] != v}
        if diff:
            print(f'swin2mmdet: {args.src} is not {args.arch}: (file, expected) {diff}')
        arch.update(want)
    model_keys = SwinTransformer(**arch).state_dict()
    missing = [k for k in model_keys if k not in state and not re.match(r'norm\d', k)]
    unexpected = [k for k in state if k not in model_keys]
    shapes = [f'{k}: {tuple(v.shape)} vs {tuple(model_keys[k].shape)}'
              for k, v in state.items() if k in model_keys and v.shape != model_keys[k].shape]

    mapping = list(zip(kept, state))
    counts = Counter(_rule(old, new) for old, new in mapping)
    print(f'swin2mmdet: {args.src}: {len(state)} tensors mapped, arch {arch}')
    for rule, n in sorted(counts.items()):
        print(f'  {n:4d}  {rule}')
    print(f'  {len(dropped):4d}  dropped (classification head, final norm, attn_mask): '
          f'{dropped[:6]}{" ..." if len(dropped) > 6 else ""}')
    if args.verbose:
        for old, new in mapping:
            print(f'  {old} -> {new}')
    if missing or unexpected or shapes:
        for what, keys in (('missing', missing), ('unexpected', unexpected),
                           ('shape mismatch', shapes)):
            if keys:
                print(f'  {what} ({len(keys)}): {keys[:20]}'
                      f'{f" ... and {len(keys) - 20} more" if len(keys) > 20 else ""}')
        sys.exit(f'swin2mmdet: {args.src} does not fit a Swin with {arch}; nothing written')
    atomic_torch_save({'state_dict': OrderedDict(('backbone.' + k, v) for k, v in state.items()),
                       'meta': dict(converted_from=args.src, arch=arch)}, args.dst)
    print(f'swin2mmdet: wrote {args.dst}')
    return state


if __name__ == '__main__':
    main()
