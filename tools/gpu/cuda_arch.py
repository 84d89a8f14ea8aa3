"""Print ``TORCH_CUDA_ARCH_LIST`` for the GPUs of this machine (docs/gpu.md).

    python tools/gpu/cuda_arch.py          # e.g. '9.0' on an H100/H200, '8.0;8.6' on A100 + A10

mmcv's CUDA ops are then compiled for these devices only (minutes instead of an hour for every
architecture torch knows). Exit status 1 with one line when torch sees no CUDA device.
"""
import sys


def arch_list(capabilities) -> str:
    """``[(major, minor), ...]`` (``torch.cuda.get_device_capability``) -> ``'8.0;9.0'``.

    Duplicates (several GPUs of one kind) are listed once, in ascending order.

    Raises:
        ValueError: no capability, or one that is not a pair of non-negative integers.
    """
    caps = list(capabilities)
    if not caps:
        raise ValueError('no CUDA device capability given')
    for cap in caps:
        if (len(cap) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                     for v in cap)):
            raise ValueError(f'a compute capability is (major, minor) integers, got {cap!r}')
    return ';'.join(f'{major}.{minor}' for major, minor in sorted(set(map(tuple, caps))))


def main() -> int:
    import torch
    if not torch.cuda.is_available():
        print(f'cuda_arch: torch {torch.__version__} sees no CUDA device (CUDA build: '
              f'{torch.version.cuda})', file=sys.stderr)
        return 1
    print(arch_list(torch.cuda.get_device_capability(i)
                    for i in range(torch.cuda.device_count())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
