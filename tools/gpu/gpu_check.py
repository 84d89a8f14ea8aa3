"""Prove the CUDA path on one GPU in one command and leave the results in OUT_DIR (docs/gpu.md).

    tools/gpu/gpu_check.sh OUT_DIR [--quick] [--dry-run] [--force]

Steps, each a subprocess with its own time limit (the limits add up to under 8 minutes):

1. ``environment``: versions, ``nvidia-smi``; 2. ``cuda-tier``: ``pytest -m cuda tests/test_gpu``
   (the CUDA test tier: the memory meter against the allocator, E3VA's gradients, ``tools/train.py
   --amp`` with resume on the demos, NCCL under torchrun); ``--quick`` stops here.
3. ``bench-demo``: ``tools/bench.py --methods all --device cuda`` on the demo;
4. ``bench-demo-amp``: the same with ``--amp``;
5. ``bench-paper``: the COCO Swin-B paper-size bench config with full, frozen, e3va,
   e3va-recompute and e3va-lowmem on CUDA.

OUT_DIR gets at most 8 files (:data:`OUT_FILES`): ``summary.txt`` (also printed last),
``log.txt`` (every command with its output), ``environment.txt``, ``junit.xml``,
``memory_summary.txt`` (``torch.cuda.memory_summary()`` at the end of the tier), and the three
benches merged into ``bench.json``, ``bench.md`` and ``bench.png``. Scratch work directories
(checkpoints) live in a temporary folder that is removed at the end.

Exit status: 0 when every step passed; 1 when one failed or ran out of time (the others still
run); 2 without a CUDA device (checked first, nothing written) or on bad arguments (OUT_DIR not
empty without ``--force``). ``--dry-run`` prints the commands and checks nothing.
"""
import argparse
import json
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))
PAPER_CONFIG = ('configs/bench/'
                'cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_bench-2x1333x800_bundled-coco.py')
PAPER_METHODS = 'full,frozen,e3va,e3va-recompute,e3va-lowmem'
#: every file the check may write into OUT_DIR
OUT_FILES = ('summary.txt', 'log.txt', 'environment.txt', 'junit.xml', 'memory_summary.txt',
             'bench.json', 'bench.md', 'bench.png')
#: (bench step, its section in bench.json / bench.md)
BENCHES = (('bench-demo', 'demo'), ('bench-demo-amp', 'demo_amp'), ('bench-paper', 'paper_swin_b'))
CUDA_PROBE_TIMEOUT = 30
NVIDIA_SMI_TIMEOUT = 10



class Step:
    """One command of the check: ``name``, ``argv``, ``timeout`` (s), extra ``env``, ``quick``
    (part of ``--quick``)."""

    def __init__(self, name, argv, timeout, env=None, quick=False):
        self.name, self.argv, self.timeout = name, argv, timeout
        self.env, self.quick = env or {}, quick

    def shell(self) -> str:
        env = ' '.join(f'{k}={shlex.quote(v)}' for k, v in self.env.items())
        return (env + ' ' if env else '') + shlex.join(self.argv)


def plan(out_dir: str, tmp_dir: str, python: str = sys.executable, quick: bool = False) -> list:
    """The steps of the check, in order (``--quick``: those up to and including the tier)."""
    bench = [python, 'tools/bench.py']
    common = ['--device', 'cuda', '--seed', '0']
    steps = [
        Step('environment', [python, 'tools/gpu/gpu_check.py', '--environment'], 20,
             quick=True),
        Step('cuda-tier', [python, '-m', 'pytest', 'tests/test_gpu', '-m', 'cuda', '-v', '-rs',
                           '-p', 'no:cacheprovider', '--basetemp', osp.join(tmp_dir, 'cuda-tier'),
                           '--junitxml', osp.join(out_dir, 'junit.xml')],
             230, env=dict(MMSIDETUNE_CUDA_MEMORY_SUMMARY=osp.join(out_dir, 'memory_summary.txt')),
             quick=True),
        Step('bench-demo', bench + ['--methods', 'all', '--steps', '5', '--warmup', '2'] + common
             + ['--out-dir', osp.join(tmp_dir, 'demo')], 55),
        Step('bench-demo-amp', bench + ['--methods', 'all', '--steps', '5', '--warmup', '2',
                                        '--amp'] + common
             + ['--out-dir', osp.join(tmp_dir, 'demo_amp')], 55),
        Step('bench-paper', bench + [PAPER_CONFIG, '--methods', PAPER_METHODS, '--steps', '3',
                                     '--warmup', '1'] + common
             + ['--out-dir', osp.join(tmp_dir, 'paper_swin_b')], 80),
    ]
    return [s for s in steps if s.quick] if quick else steps


def print_environment() -> None:
    """Versions of the stack and the GPUs torch sees (the ``environment`` step)."""
    import importlib
    import platform

    import torch
    print(f'python {sys.version.split()[0]} ({sys.executable}), {platform.platform()}')
    print(f'torch {torch.__version__}, CUDA build {torch.version.cuda}, '
          f'cuDNN {torch.backends.cudnn.version()}')
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f'cuda:{i} {p.name}, capability {p.major}.{p.minor}, '
              f'{p.total_memory / 2**30:.1f} GiB')
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'transformers', 'numpy', 'mmsidetune'):
        m = importlib.import_module(name)
        print(f'{name} {getattr(m, "__version__", "?")} ({m.__file__})')
    from mmcv.ops import get_compiling_cuda_version
    print(f'mmcv ops compiled with CUDA {get_compiling_cuda_version()}')


def cuda_probe(python: str = sys.executable, timeout: float = CUDA_PROBE_TIMEOUT) -> str:
    """``''`` when ``python`` sees a CUDA device, else one line saying why not (never hangs)."""
    code = ('import torch; ok = torch.cuda.is_available(); '
            'print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, '
            'devices {torch.cuda.device_count() if ok else 0}"); raise SystemExit(0 if ok else 3)')
    try:
        proc = subprocess.run([python, '-c', code], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f'probing CUDA with {python} took over {timeout} s'
    if proc.returncode == 0:
        return ''
    detail = (proc.stdout.strip() or proc.stderr.strip().splitlines()[-1:] or ['?'])
    detail = detail if isinstance(detail, str) else detail[0]
    return f'no CUDA device ({detail})'


def run_step(step: Step, log) -> tuple:
    """Run one step with its time limit; its whole process group is killed on timeout.
    Returns ``(status, seconds)`` with status ``'ok'``, ``'FAILED (exit N)'`` or ``'TIMEOUT'``."""
    log.write(f'\n===== {step.name} (limit {step.timeout} s)\n$ {step.shell()}\n')
    log.flush()
    env = {**os.environ, 'PYTHONPATH': ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
           **step.env}
    t0 = time.monotonic()
    proc = subprocess.Popen(step.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        rc = proc.wait(timeout=step.timeout)
        status = 'ok' if rc == 0 else f'FAILED (exit {rc})'
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        status = 'TIMEOUT'
    seconds = time.monotonic() - t0
    log.write(f'===== {step.name}: {status} in {seconds:.0f} s\n')
    log.flush()
    return status, seconds


def junit_counts(path: str) -> str:
    """``'12 passed, 0 failed, 1 skipped'`` from a pytest JUnit file (``'no junit.xml'``)."""
    if not osp.isfile(path):
        return 'no junit.xml'
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == 'testsuite' else list(root)
    total = sum(int(s.get('tests', 0)) for s in suites)
    failed = sum(int(s.get('failures', 0)) + int(s.get('errors', 0)) for s in suites)
    skipped = sum(int(s.get('skipped', 0)) for s in suites)
    return f'{total - failed - skipped} passed, {failed} failed, {skipped} skipped'


def merge_benches(tmp_dir: str, out_dir: str) -> list:
    """The benches' json/md/png merged into OUT_DIR; returns summary lines (method, MB, ms)."""
    merged, md, pngs, lines = {}, [], [], []
    for _, section in BENCHES:
        src = osp.join(tmp_dir, section)
        if not osp.isfile(osp.join(src, 'bench.json')):
            continue
        with open(osp.join(src, 'bench.json')) as f:
            merged[section] = json.load(f)  # {"meta", "rows"} (a bare list before 2026-12-07)
        rows = merged[section]['rows'] if isinstance(merged[section], dict) else merged[section]
        with open(osp.join(src, 'bench.md')) as f:
            md.append(f'## {section}\n\n{f.read().strip()}\n')
        if osp.isfile(osp.join(src, 'bench.png')):
            pngs.append(osp.join(src, 'bench.png'))
        for row in rows:  # one row per method
            lines.append(f'  {section:<13} {row["method"]:<22} {row["memory_mb"]:>9.1f} MB '
                         f'{row["step_ms"]:>9.1f} ms')
    if merged:
        with open(osp.join(out_dir, 'bench.json'), 'w') as f:
            json.dump(merged, f, indent=1)
        with open(osp.join(out_dir, 'bench.md'), 'w') as f:
            f.write('\n'.join(md))
    if pngs:
        import matplotlib.image as mpimg
        import numpy as np
        images = [mpimg.imread(p)[..., :3] for p in pngs]
        width = max(im.shape[1] for im in images)
        images = [np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=1.0)
                  for im in images]
        mpimg.imsave(osp.join(out_dir, 'bench.png'), np.concatenate(images, axis=0))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', nargs='?', help='folder for the results (at most 8 files)')
    parser.add_argument('--quick', action='store_true', help='environment and CUDA tier only')
    parser.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    parser.add_argument('--force', action='store_true', help='replace files in a non-empty OUT_DIR')
    parser.add_argument('--environment', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.environment:
        print_environment()
        return 0
    if args.out_dir is None:
        parser.error('OUT_DIR is required')
    out_dir = osp.abspath(args.out_dir)
    if args.dry_run:
        steps = plan(out_dir, osp.join(tempfile.gettempdir(), 'gpu_check-XXXX'), quick=args.quick)
        print(f'# gpu_check dry run: {len(steps)} steps, limits {sum(s.timeout for s in steps)} s '
              f'in all, run in {ROOT} with PYTHONPATH={ROOT}; files in {out_dir}: '
              + ', '.join(OUT_FILES))
        for s in steps:
            print(f'# {s.name} (limit {s.timeout} s)\n{s.shell()}')
        return 0
    if osp.isdir(out_dir) and os.listdir(out_dir) and not args.force:
        print(f'gpu_check: {out_dir} is not empty (add --force to replace its files)',
              file=sys.stderr)
        return 2
    why = cuda_probe()
    if why:
        print(f'gpu_check: {why}: this check needs a CUDA GPU; nothing was run '
              f'(--dry-run prints the commands)', file=sys.stderr)
        return 2
    os.makedirs(out_dir, exist_ok=True)
    for name in OUT_FILES:
        if osp.exists(osp.join(out_dir, name)):
            os.remove(osp.join(out_dir, name))
    t0 = time.monotonic()
    results = []
    tmp_dir = tempfile.mkdtemp(prefix='gpu_check-')
    try:
        with open(osp.join(out_dir, 'log.txt'), 'w') as log:
            for step in plan(out_dir, tmp_dir, quick=args.quick):
                print(f'gpu_check: {step.name} (limit {step.timeout} s) ...', flush=True)
                status, seconds = run_step(step, log)
                print(f'gpu_check: {step.name}: {status} in {seconds:.0f} s', flush=True)
                results.append((step.name, status, seconds))
        with open(osp.join(out_dir, 'environment.txt'), 'w') as env_file:
            text = open(osp.join(out_dir, 'log.txt')).read()
            start = text.find('===== environment')
            env_file.write(text[start:text.find('===== environment:', start)] + '\n')
            try:
                smi = subprocess.run(['nvidia-smi'], capture_output=True, text=True,
                                     timeout=NVIDIA_SMI_TIMEOUT)
                env_file.write('$ nvidia-smi\n' + smi.stdout + smi.stderr)
            except (OSError, subprocess.TimeoutExpired) as e:
                env_file.write(f'$ nvidia-smi\nnot run: {e}\n')
        bench_lines = merge_benches(tmp_dir, out_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    failed = [name for name, status, _ in results if status != 'ok']
    summary = [f'gpu_check summary ({"quick" if args.quick else "full"}, '
               f'{time.monotonic() - t0:.0f} s): '
               + ('all steps passed' if not failed else 'FAILED: ' + ', '.join(failed))]
    summary += [f'  {name:<15} {status:<16} {seconds:>5.0f} s' for name, status, seconds in results]
    summary.append(f'  CUDA tier: {junit_counts(osp.join(out_dir, "junit.xml"))}')
    if bench_lines:
        summary.append('  bench (section, method, training memory, step time):')
        summary += bench_lines
    summary.append(f'  files: {", ".join(f for f in OUT_FILES if osp.exists(osp.join(out_dir, f)))}'
                   f' in {out_dir}')
    with open(osp.join(out_dir, 'summary.txt'), 'w') as f:
        f.write('\n'.join(summary) + '\n')
    print('\n'.join(summary))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
