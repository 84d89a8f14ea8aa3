"""Bytes E3VA's highway keeps for backward on a Swin backbone alone, per memory option.

    python tools/analysis_tools/highway_memory.py --arch swin-b --img-size 1344x800 --batch 2

Builds the frozen Swin and E3VA with each memory option (docs/e3va.md, "Memory options") from the
same random weights, runs forward + a scalar loss over the outputs + backward on the same random
images, and prints per variant: bytes saved for backward (``SavedTensorMeter``: the bytes above
the frozen-trunk floor, since the frozen trunk saves none), trunk parameter bytes, the median
time of forward + backward, the relative gradient error of the trainable parameters against the
exact float32 E3VA (``e3va`` row; the worst ``||g - g_ref|| / ||g_ref||`` over the trainable
parameter tensors) and the relative difference of the outputs against it (over all four).
Adapters are given random non-zero weights (std 0.02) so that every gradient is non-zero.
"""
import argparse
import statistics
import time

import torch
from mmengine.registry import MODELS

import mmsidetune  # noqa: F401  (registers the backbones)
from mmsidetune.cost import MB, SavedTensorMeter

ARCHS = {
    'swin-b': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'swin-l': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
    'demo': dict(embed_dims=64, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16)),
}
# variant -> (backbone type, E3VA options)
VARIANTS = {
    'frozen': ('FrozenSwinTransformer', {}),
    'e3va-plain-adapters': ('E3VASwinTransformer', dict(_plain=True)),
    'e3va': ('E3VASwinTransformer', {}),
    'tap_dtype=bf16': ('E3VASwinTransformer', dict(tap_dtype='bfloat16')),
    'recompute_trunk': ('E3VASwinTransformer', dict(recompute_trunk=True)),
    'recompute_trunk=(0,1)': ('E3VASwinTransformer', dict(recompute_trunk=(0, 1))),
    'trunk_dtype=bf16': ('E3VASwinTransformer', dict(trunk_dtype='bfloat16')),
    'recompute+tap bf16': ('E3VASwinTransformer', dict(recompute_trunk=True,
                                                      tap_dtype='bfloat16')),
    "recompute_trunk='input'": ('E3VASwinTransformer', dict(recompute_trunk='input')),
    'e3va-lowmem': ('E3VASwinTransformer', dict(recompute_trunk='input', tap_dtype='bfloat16',
                                                trunk_dtype='bfloat16')),
}


def _size(text):
    w, h = (int(v) for v in text.lower().split('x'))
    return w, h


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', default='swin-b', choices=sorted(ARCHS))
    p.add_argument('--img-size', type=_size, default=(1344, 800), metavar='WxH')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--highway', default='full', choices=('full', 'residual'))
    p.add_argument('--variants', default=','.join(VARIANTS))
    p.add_argument('--repeats', type=int, default=2,
                   help='timed forward+backward per variant after one warm-up (0: time that one)')
    return p.parse_args()


def _build(kind, options, arch, highway, state):
    options = dict(options)
    plain = options.pop('_plain', False)
    if kind == 'E3VASwinTransformer':
        options['highway'] = highway
    torch.manual_seed(0)
    model = MODELS.build(dict(type=kind, window_size=7, out_indices=(0, 1, 2, 3), **arch,
                              **options))
    if plain:
        model.method._plain_adapters = True
    missing, _ = model.load_state_dict(state, strict=False)
    assert not [k for k in missing if not k.startswith('highway.')], missing
    return model.train()


def _step(model, img):
    model.zero_grad(set_to_none=True)
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        outs = model(img)
    # outside the meter: what the loss itself saves (its input, the outputs) is not the model's
    loss = sum(o.float().square().mean() for o in outs)
    if loss.requires_grad:
        loss.backward()
    return meter.bytes, [o.detach().float() for o in outs]


def _rel(value, ref):
    return ((value - ref).norm() / ref.norm()).item()


def main():
    args = parse_args()
    arch = ARCHS[args.arch]
    torch.manual_seed(0)
    ref = MODELS.build(dict(type='E3VASwinTransformer', window_size=7, out_indices=(0, 1, 2, 3),
                            highway=args.highway, **arch))
    ref.init_weights()
    for name, p in ref.named_parameters():
        if name.startswith('highway.') and p.dim() > 1:
            torch.nn.init.normal_(p, std=0.02)
    state = ref.state_dict()
    del ref
    w, h = args.img_size
    torch.manual_seed(1)
    img = torch.randn(args.batch, 3, h, w)
    e3va_outs = ref_grads = None
    print(f'{args.arch} {args.highway} highway, input ({args.batch}, 3, {h}, {w}), '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    print('| variant | saved for backward (MB) | trunk params (MB) | fwd+bwd (s) | '
          'grad rel. error | output rel. diff |')
    print('|---|---:|---:|---:|---:|---:|')
    for name in args.variants.split(','):
        kind, options = VARIANTS[name]
        model = _build(kind, options, arch, args.highway, state)
        trunk_bytes = sum(t.numel() * t.element_size() for m in model.trunk_modules()
                          for t in m.parameters())
        times = []
        for _ in range(args.repeats + 1):  # first one is warm-up
            t0 = time.perf_counter()
            saved, outs = _step(model, img)
            times.append(time.perf_counter() - t0)
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                 if p.grad is not None}
        if name == 'e3va':
            ref_grads = grads
        out_diff = grad_err = '-'
        if ref_grads is not None and grads and name != 'e3va':
            grad_err = f'{max(_rel(grads[k], g) for k, g in ref_grads.items() if g.any()):.2e}'
        if name == 'e3va':
            e3va_outs = outs
        elif kind == 'E3VASwinTransformer' and e3va_outs is not None:
            num = sum((a - b).square().sum() for a, b in zip(outs, e3va_outs))
            den = sum(b.square().sum() for b in e3va_outs)
            out_diff = f'{(num / den).sqrt().item():.2e}'
        seconds = statistics.median(times[1:] or times)
        print(f'| {name} | {saved / MB:.1f} | {trunk_bytes / MB:.1f} | {seconds:.2f} | '
              f'{grad_err} | {out_diff} |', flush=True)
        del model, grads


if __name__ == '__main__':
    main()
