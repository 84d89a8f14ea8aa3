"""Fold a LoRA model's updates into its frozen trunk weights and write a plain mmdet/mmseg model
(as HF PEFT's ``merge_and_unload``; docs/methods/lora.md, "Export").

    python tools/model_converters/merge_lora.py CONFIG CHECKPOINT OUT [--force] \
        [--check-size 224] [--no-check] [--cfg-options K=V ...]

The model is built from CONFIG on the CPU and CHECKPOINT loaded into it: a full mmengine
checkpoint (every key must fit), or an adapter-only file (``full_to_adapter.py``, training's
adapter files), which goes onto the pretrained trunk named by the config's ``init_cfg``. Every
LoRA update becomes part of its frozen weight, ``W' = W + (alpha / r) B A``. Written:

* ``OUT``: ``{'meta', 'state_dict'}`` with the model's keys, the backbone in the plain upstream
  layout (``backbone.stages.0.blocks.0.attn.w_msa.qkv.weight`` ..., no ``backbone.lora.*``);
  ``meta['lora_merged']`` says what was merged from which files, ``meta['cfg']`` is the plain
  config; the checkpoint's other meta (``dataset_meta`` ...) is kept, the training state
  (optimizer, schedulers, message hub) is not. Loads with ``torch.load(weights_only=True)``.
* ``OUT`` with the suffix ``.py``: CONFIG with ``model.backbone`` replaced by the upstream
  backbone (``mmdet.SwinTransformer`` ... with the same arguments; the wrapper's pretrained
  ``init_cfg`` dropped: OUT holds every weight), for ``tools/test.py OUT.py OUT`` or
  ``mim test mmdet OUT.py --checkpoint OUT``.

Before writing, the plain model is built from that config and loads OUT's state dict with
``strict=True``, and each merged backbone's outputs on one random ``1 x 3 x S x S`` image
(``--check-size``) are compared with the LoRA backbone's: they must agree to 1e-4 of the
outputs' largest magnitude (float32 sums in another order, not bitwise); ``--no-check`` skips
the comparison. CHECKPOINT is fully unpickled (mmengine's checkpoints need it): merge only your
own files. OUT is never an input; an existing OUT or OUT.py is replaced only with ``--force``,
atomically. Exits non-zero with the reason on any problem.
"""
import argparse
import copy
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope

import mmsidetune  # noqa: F401  (registers the modules)
from mmsidetune.tuners import (LoRAMergeError, lora_backbones, lora_layers,
                               merge_lora_state_dict, plain_backbone_config)
from mmsidetune.utils import (AdapterCheckpointError, CheckpointMismatchError, CheckpointReadError,
                              atomic_torch_save, atomic_write_bytes, check_output_path,
                              load_weights)

#: Largest allowed max |LoRA - merged| of a backbone output, relative to its max |LoRA output|.
RTOL = 1e-4
#: Training state of a full checkpoint, not carried over (it refers to the LoRA parameters).
TRAINING_STATE = ('optimizer', 'param_schedulers', 'message_hub', 'ema_state_dict')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='full mmengine checkpoint or adapter-only file')
    parser.add_argument('out', help='merged checkpoint to write (its config goes next to it, '
                        'with the suffix .py)')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT / OUT.py')
    parser.add_argument('--check-size', type=int, default=224,
                        help='side S of the random image the outputs are compared on (pixels)')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the output comparison (the strict load is always checked)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, xxx=yyy format')
    return parser.parse_args(argv)


def _fail(msg: str):
    sys.exit(f'merge_lora: {msg}')


def _config_path(out: str) -> str:
    return osp.splitext(out)[0] + '.py'


def _is_plain(value) -> bool:
    """Whether ``value`` loads with ``torch.load(weights_only=True)`` (plain data, no objects)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _is_plain(v) for k, v in value.items())
    return False


def plain_config(cfg: Config, names) -> Config:
    """``cfg`` with the LoRA backbones at module paths ``names`` (``'backbone'``) replaced by
    their upstream backbone configs."""
    cfg = copy.deepcopy(cfg)
    for name in names:
        *path, key = name.split('.')
        parent = cfg.model
        for part in path:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or not isinstance(parent.get(key), dict):
            raise LoRAMergeError(f'the LoRA backbone model.{name} has no config at '
                                 f'model.{name}: cannot write the plain config')
        parent[key] = plain_backbone_config(parent[key])
    return cfg


@torch.no_grad()
def _compare(model, plain, names, size: int) -> float:
    """Largest relative difference of the LoRA and the plain backbones' outputs."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size)
    worst = 0.0
    for name in names:
        a = model.get_submodule(name) if name else model
        b = plain.get_submodule(name) if name else plain
        a.eval()
        b.eval()
        outs_a, outs_b = a(x), b(x)
        outs_a = outs_a if isinstance(outs_a, (list, tuple)) else [outs_a]
        outs_b = outs_b if isinstance(outs_b, (list, tuple)) else [outs_b]
        for u, v in zip(outs_a, outs_b):
            worst = max(worst, ((u - v).abs().max() / u.abs().max().clamp_min(1e-12)).item())
    return worst


def main(argv=None) -> dict:
    """Run the merge; returns the written ``meta``."""
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            _fail(f'{what} not found: {path}')
    out_cfg = _config_path(args.out)
    if osp.abspath(out_cfg) == osp.abspath(args.out):
        _fail(f'OUT {args.out} ends in .py: name the checkpoint file (e.g. merged.pth)')
    try:
        for out in (args.out, out_cfg):
            check_output_path(out, (args.config, args.checkpoint), args.force)
    except (ValueError, OSError) as e:
        _fail(e)

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)
    try:
        names = [name for name, _ in lora_backbones(model)]
        layers = lora_layers(model)  # refuses a model without LoRA before reading the file
        loaded = load_weights(model, args.checkpoint)
        kind = loaded['kind']  # an adapter-only file's meta describes that file, not OUT
        src_meta = loaded['meta'] if kind == 'full' else {}
        model.eval()
        state = merge_lora_state_dict(model)
        plain_cfg = plain_config(cfg, names)
    except (LoRAMergeError, CheckpointMismatchError, AdapterCheckpointError, CheckpointReadError,
            FileNotFoundError, KeyError) as e:
        _fail(f'{args.checkpoint} with {args.config}: {e}')

    plain = MODELS.build(plain_cfg.model)
    try:
        plain.load_state_dict(state, strict=True)
    except RuntimeError as e:  # a bug: the merged keys must be the upstream model's
        _fail(f'the merged state dict does not load into the plain model of the config:\n{e}')
    diff = None
    if not args.no_check:
        diff = _compare(model, plain, names, args.check_size)
        if diff > RTOL:
            _fail(f'the plain model\'s outputs differ from the LoRA model\'s by {diff:.2e} of '
                  f'their magnitude (allowed {RTOL:.0e}); nothing written')

    backbones = {}
    for name in names:
        bb = model.get_submodule(name) if name else model
        method = bb.method
        backbones[name or '.'] = dict(
            module=type(bb)._upstream.__name__, rank=method.rank, alpha=method.alpha,
            targets=sorted({k for stage in method for block in stage for k in block}),
            layers=sum(1 for layer in layers if layer.update_key.startswith(
                (name + '.' if name else '') + method.layers_name + '.')))
    meta = {k: v for k, v in src_meta.items() if k != 'cfg' and _is_plain(v)}
    meta['cfg'] = plain_cfg.pretty_text
    meta['lora_merged'] = dict(
        mmsidetune_version=mmsidetune.__version__, source_config=osp.abspath(args.config),
        source_checkpoint=osp.abspath(args.checkpoint), source_kind=kind, backbones=backbones,
        max_relative_output_difference=diff, check_size=None if args.no_check else
        args.check_size)
    atomic_torch_save({'meta': meta, 'state_dict': state}, args.out)
    atomic_write_bytes(plain_cfg.pretty_text.encode('utf-8'), out_cfg)

    dropped = len(model.state_dict()) - len(state)
    for name, info in backbones.items():
        print(f'merged {info["layers"]} LoRA updates (rank {info["rank"]}, alpha '
              f'{info["alpha"]}, targets {info["targets"]}) of {name} ({info["module"]}) into '
              f'their frozen weights, from the {kind} checkpoint {args.checkpoint}')
    print(f'wrote {args.out} ({len(state)} tensors, {dropped} LoRA tensors removed, '
          f'{os.path.getsize(args.out) / 2**20:.2f} MB) and its plain config {out_cfg}; '
          f'checked: the plain model loads it strictly'
          + ('' if diff is None else f', outputs on a 1x3x{args.check_size}x{args.check_size} '
             f'image agree to {diff:.1e} of their magnitude'))
    return meta


if __name__ == '__main__':
    main()
