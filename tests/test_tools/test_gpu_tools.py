"""tools/gpu (docs/gpu.md) on the CPU: the bundle's pins and closure check, the CUDA arch list,
gpu_check's plan, dry run, refusal without CUDA and merged outputs, the offline install's
refusals. The download and the install themselves: `make gpu-bundle-check` (network, minutes)."""
import importlib.util
import io
import json
import os
import os.path as osp
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GPU_TOOLS = osp.join(ROOT, 'tools', 'gpu')


def _load(name):
    spec = importlib.util.spec_from_file_location(f'gpu_tools_{name}',
                                                  osp.join(GPU_TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bundle = _load('make_bundle')
check = _load('gpu_check')
cuda_arch = _load('cuda_arch')


def test_arch_list_from_compute_capabilities():
    assert cuda_arch.arch_list([(9, 0)]) == '9.0'
    assert cuda_arch.arch_list([(8, 6), (8, 0), (8, 6), (12, 0)]) == '8.0;8.6;12.0'
    for bad in ([], [(9,)], [(9, -1)], [('9', '0')], [(9.0, 0)]):
        with pytest.raises(ValueError):
            cuda_arch.arch_list(bad)


def test_pins_are_exact_and_leave_out_what_the_target_has():
    pins = bundle.read_list(bundle.REQUIREMENTS)
    assert pins and all('==' in p for p in pins)
    names = {bundle.canonical(p.split('==')[0]) for p in pins}
    have = {bundle.canonical(n) for n in bundle.read_list(bundle.TARGET_PACKAGES)}
    assert not names & have
    assert {'torch', 'numpy', 'opencv-python-headless', 'transformers'} <= have
    assert {'mmengine', 'mmdet', 'mmsegmentation', 'mmcv', 'pycocotools', 'shapely',
            'terminaltables', 'ftfy'} <= names


def test_download_commands_target_the_platform_and_fetch_mmcv_as_source(tmp_path):
    pins = ['mmdet==3.3.0', 'mmcv==2.1.0', 'setuptools==69.5.1', 'setuptools==81.0.0']
    cmds = bundle.pip_download_commands(pins, str(tmp_path), '3.12', ['manylinux_2_28_x86_64'])
    assert len(cmds) == 3  # two setuptools need two calls; the sdist a third
    for cmd in cmds:
        assert '--no-deps' in cmd  # no resolver: nothing the target has is pulled
    for cmd in cmds[:2]:
        assert cmd[cmd.index('--python-version') + 1] == '3.12'
        assert cmd[cmd.index('--abi') + 1] == 'cp312'
        assert cmd[cmd.index('--platform') + 1] == 'manylinux_2_28_x86_64'
        assert cmd[cmd.index('--only-binary') + 1] == ':all:'
    assert cmds[0][-2:] == ['mmdet==3.3.0', 'setuptools==69.5.1']
    assert cmds[1][-1] == 'setuptools==81.0.0'
    assert cmds[2][-1] == 'mmcv==2.1.0' and '--no-binary' in cmds[2]


def _wheel(path, name, version, requires):
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr(f'{name}-{version}.dist-info/METADATA',
                   f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n'
                   + ''.join(f'Requires-Dist: {r}\n' for r in requires))
    return str(path)


def _sdist(path, name, version, requires_txt):
    with tarfile.open(path, 'w:gz') as t:
        for member, text in ((f'{name}-{version}/PKG-INFO',
                              f'Name: {name}\nVersion: {version}\n'),
                             (f'{name}-{version}/{name}.egg-info/requires.txt', requires_txt)):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return str(path)


def test_metadata_of_wheels_and_sdists(tmp_path):
    whl = _wheel(tmp_path / 'a-1.0-py3-none-any.whl', 'a', '1.0',
                 ['b>=2', 'tomli; python_version < "3.11"', 'pytest; extra == "tests"'])
    assert bundle.distribution_requirements(whl) == (
        'a', '1.0', ['b>=2', 'tomli; python_version < "3.11"', 'pytest; extra == "tests"'])
    sdist = _sdist(tmp_path / 'c-2.1.0.tar.gz', 'c', '2.1.0',
                   'addict\nnumpy\n\n[:sys_platform == "win32"]\nregex\n\n[all]\nninja\n')
    assert bundle.distribution_requirements(sdist) == (
        'c', '2.1.0', ['addict', 'numpy', 'regex; sys_platform == "win32"'])


def test_closure_check_reports_what_neither_the_bundle_nor_the_target_has():
    dists = {
        'mmengine.whl': ('mmengine', '0.10.7', ['opencv-python>=3', 'rich', 'yapf',
                                                'regex; sys_platform == "win32"']),
        'yapf.whl': ('yapf', '0.43.0', ['platformdirs>=3.5.1',
                                        'tomli>=2; python_version < "3.11"']),
        'platformdirs.whl': ('platformdirs', '4.14.9', []),
        'mmdet.whl': ('mmdet', '3.3.0', ['Shapely', 'numpy', 'pytest; extra == "tests"']),
        'shapely.whl': ('shapely', '2.2.0', ['numpy>=1.26']),
        'rich.whl': ('rich', '15.0.0', ['markdown-it-py>=2.2.0', 'pygments<3']),
        'pygments.whl': ('Pygments', '2.21.0', []),
    }
    target = ['numpy', 'opencv-python']
    assert bundle.unmet_requirements(dists, target, '3.12') == [
        'rich 15.0.0 needs markdown-it-py>=2.2.0']
    assert bundle.unmet_requirements(dists, target, '3.10') == [
        'yapf 0.43.0 needs tomli>=2; python_version < "3.11"',
        'rich 15.0.0 needs markdown-it-py>=2.2.0']
    dists['md.whl'] = ('markdown_it_py', '2.0.0', [])  # bundled, but too old
    assert bundle.unmet_requirements(dists, target, '3.12') == [
        'rich 15.0.0 needs markdown-it-py>=2.2.0']
    dists['md.whl'] = ('markdown_it_py', '4.3.0', [])
    assert bundle.unmet_requirements(dists, target, '3.12') == []
    assert bundle.unmet_requirements(dists, ['numpy'], '3.12') == [
        'mmengine 0.10.7 needs opencv-python>=3']


def _run_check(*args, **kwargs):
    return subprocess.run([sys.executable, osp.join(GPU_TOOLS, 'gpu_check.py'), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path):
    out = tmp_path / 'out'
    proc = _run_check(str(out), '--dry-run')
    assert proc.returncode == 0, proc.stderr
    commands = [line for line in proc.stdout.splitlines() if not line.startswith('#')]
    assert len(commands) == 5 and not out.exists()
    assert 'tests/test_gpu -m cuda' in commands[1] and f'--junitxml {out}/junit.xml' in commands[1]
    demo, amp, paper = commands[2:]
    assert '--methods all' in demo and '--device cuda' in demo and '--amp' not in demo
    assert '--methods all' in amp and '--device cuda' in amp and '--amp' in amp
    assert check.PAPER_CONFIG in paper and f'--methods {check.PAPER_METHODS}' in paper
    assert set(check.PAPER_METHODS.split(',')) == {'full', 'frozen', 'e3va', 'e3va-recompute',
                                                     'e3va-lowmem'}
    quick = _run_check(str(out), '--dry-run', '--quick')
    assert [line.split()[1] for line in quick.stdout.splitlines()[1:] if line.startswith('#')] \
        == ['environment', 'cuda-tier']


def test_plan_fits_eight_minutes_and_eight_files(tmp_path):
    steps = check.plan(str(tmp_path / 'out'), str(tmp_path / 'tmp'))
    assert (sum(s.timeout for s in steps) + check.CUDA_PROBE_TIMEOUT
            + check.NVIDIA_SMI_TIMEOUT) <= 8 * 60
    assert len(check.OUT_FILES) <= 8
    # every path a step writes into OUT_DIR is one of OUT_FILES
    written = [a for s in steps for a in s.argv + list(s.env.values())
               if a.startswith(str(tmp_path / 'out'))]
    assert written and {osp.basename(a) for a in written} <= set(check.OUT_FILES)
    for s in steps:  # the bench configs exist
        assert all(osp.isfile(osp.join(ROOT, a)) for a in s.argv if a.endswith('.py')
                   and a.startswith('configs/'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the refusal without CUDA')
def test_refuses_without_cuda_before_writing_anything(tmp_path):
    out = tmp_path / 'out'
    proc = _run_check(str(out))
    assert proc.returncode == 2
    assert 'no CUDA device' in proc.stderr and 'needs a CUDA GPU' in proc.stderr
    assert not out.exists()


def test_refuses_a_non_empty_out_dir_without_force(tmp_path):
    (tmp_path / 'keep.txt').write_text('x')
    proc = _run_check(str(tmp_path))
    assert proc.returncode == 2 and 'not empty' in proc.stderr
    assert os.listdir(tmp_path) == ['keep.txt']


def test_benches_merge_into_one_json_md_and_png(tmp_path):
    import matplotlib.image as mpimg
    scratch, out = tmp_path / 'tmp', tmp_path / 'out'
    out.mkdir()
    for (_, section), (h, w) in zip(check.BENCHES, ((20, 30), (10, 40))):  # the paper one failed
        (scratch / section).mkdir(parents=True)
        rows = [dict(method='full', memory_mb=100.0, step_ms=5.0),
                dict(method='e3va', memory_mb=60.5, step_ms=4.0)]
        (scratch / section / 'bench.json').write_text(json.dumps(rows))
        (scratch / section / 'bench.md').write_text(f'| table {section} |\n')
        mpimg.imsave(scratch / section / 'bench.png', np.zeros((h, w, 3)))
    lines = check.merge_benches(str(scratch), str(out))
    merged = json.loads((out / 'bench.json').read_text())
    assert list(merged) == ['demo', 'demo_amp'] and merged['demo'][1]['memory_mb'] == 60.5
    md = (out / 'bench.md').read_text()
    assert md.index('## demo\n') < md.index('| table demo |') < md.index('## demo_amp')
    assert mpimg.imread(out / 'bench.png').shape[:2] == (30, 40)
    assert len(lines) == 4 and 'e3va' in lines[1] and '60.5 MB' in lines[1]


def test_junit_counts(tmp_path):
    xml = tmp_path / 'junit.xml'
    xml.write_text('<testsuites><testsuite tests="17" failures="1" errors="1" skipped="3">'
                   '</testsuite></testsuites>')
    assert check.junit_counts(str(xml)) == '12 passed, 2 failed, 3 skipped'
    assert check.junit_counts(str(tmp_path / 'none.xml')) == 'no junit.xml'


def _install(*args):
    return subprocess.run(['bash', osp.join(GPU_TOOLS, 'install_offline.sh'), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_offline_install_refuses_bad_bundles_before_making_anything(tmp_path):
    venv = tmp_path / 'venv'
    proc = _install(str(tmp_path / 'missing'), '--venv', str(venv))
    assert proc.returncode == 1 and 'not a bundle' in proc.stderr
    folder = tmp_path / 'bundle'
    folder.mkdir()
    (folder / 'mmdet-3.3.0-py3-none-any.whl').write_bytes(b'changed in transit')
    (folder / 'MANIFEST.txt').write_text('# header\nmmdet-3.3.0-py3-none-any.whl\t18\t'
                                         + '0' * 64 + '\n')
    proc = _install(str(folder), '--venv', str(venv), '--python', sys.executable)
    assert proc.returncode == 1
    assert 'mmdet-3.3.0-py3-none-any.whl is missing or differs from MANIFEST.txt' in proc.stderr
    proc = _install(str(folder), '--venv', str(venv), '--mmcv-wheel', str(tmp_path / 'no.whl'))
    assert proc.returncode == 1 and 'no such file' in proc.stderr
    assert not venv.exists()


def test_a_step_over_its_limit_is_killed_with_its_children(tmp_path):
    pidfile = tmp_path / 'child.pid'
    step = check.Step('sleepy', ['bash', '-c', f'sleep 300 & echo $! > {pidfile}; wait'], 1)
    with open(tmp_path / 'log.txt', 'w') as log:
        status, _ = check.run_step(step, log)
        failed, _ = check.run_step(check.Step('fails', ['bash', '-c', 'exit 3'], 10), log)
    assert status == 'TIMEOUT' and failed == 'FAILED (exit 3)'
    child = int(pidfile.read_text())
    state = osp.join('/proc', str(child), 'status')
    # the grandchild got the group's SIGKILL too: gone, or a zombie waiting to be reaped
    assert not osp.exists(state) or 'zombie' in open(state).read()
    assert 'sleepy: TIMEOUT' in (tmp_path / 'log.txt').read_text()


def test_cuda_probe_gives_up_instead_of_hanging(tmp_path):
    stuck = tmp_path / 'python'
    stuck.write_text('#!/bin/sh\nexec sleep 300\n')
    stuck.chmod(0o755)
    assert check.cuda_probe(str(stuck), timeout=1) == f'probing CUDA with {stuck} took over 1 s'
    if not torch.cuda.is_available():
        assert check.cuda_probe().startswith('no CUDA device (torch ')
