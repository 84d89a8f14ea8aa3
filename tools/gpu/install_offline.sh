#!/usr/bin/env bash
# Install mmsidetune's stack from an offline bundle (tools/gpu/make_bundle.py) on a machine
# without network, keeping the machine's own PyTorch (docs/gpu.md).
#
#   tools/gpu/install_offline.sh BUNDLE_DIR [--venv DIR] [--python PY] [--mmcv-wheel WHL] [--force]
#
#   --venv DIR        the environment to create (default: <repo>/.venv-gpu). It is made with
#                     --system-site-packages over PY, so PY's torch (CUDA build), numpy, ... stay
#                     in use; when PY itself runs in a venv, a .pth file adds that venv's packages.
#   --python PY       the interpreter that has torch (default: python3)
#   --mmcv-wheel WHL  install this prebuilt mmcv 2.1.0 wheel instead of compiling the bundle's
#                     source (a CPU machine; the test in tools/gpu/check_offline_install.sh)
#   --force           replace an existing DIR
#
# Without --mmcv-wheel, mmcv 2.1.0 is compiled with its CUDA ops for the local GPUs only:
# TORCH_CUDA_ARCH_LIST from their compute capability (tools/gpu/cuda_arch.py), MAX_JOBS = cores
# (override with MAX_JOBS=N); without a CUDA device this stops with an error before compiling.
# Every pip call uses --no-index --no-deps on the bundle's exact pins (tools/gpu/
# bundle-requirements.txt); `pip check` then vouches for the requirements. Prints the time taken.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUNDLE=""
VENV="$ROOT/.venv-gpu"
PY="python3"
MMCV_WHEEL=""
FORCE=0
usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "install_offline: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV="${2:?--venv needs a folder}"; shift 2 ;;
    --python) PY="${2:?--python needs an interpreter}"; shift 2 ;;
    --mmcv-wheel) MMCV_WHEEL="${2:?--mmcv-wheel needs a file}"; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$BUNDLE" ] || die "one BUNDLE_DIR only, got '$BUNDLE' and '$1'"; BUNDLE="$1"; shift ;;
  esac
done
[ -n "$BUNDLE" ] || { usage >&2; die "BUNDLE_DIR missing"; }
[ -f "$BUNDLE/MANIFEST.txt" ] || die "$BUNDLE is not a bundle (no MANIFEST.txt; make it with tools/gpu/make_bundle.py)"
BUNDLE="$(cd "$BUNDLE" && pwd)"
command -v "$PY" >/dev/null || die "interpreter '$PY' not found (--python)"
[ -z "$MMCV_WHEEL" ] || [ -f "$MMCV_WHEEL" ] || die "--mmcv-wheel $MMCV_WHEEL: no such file"
if [ -e "$VENV" ]; then
  [ "$FORCE" = 1 ] || die "$VENV exists (add --force to replace it, or --venv DIR)"
  rm -rf "$VENV"
fi

t0=$SECONDS
step=""
trap 'rc=$?; [ $rc -eq 0 ] || echo "install_offline: FAILED at step: $step (exit $rc)" >&2' EXIT
say() { step="$1"; echo "install_offline: [$((SECONDS - t0)) s] $1"; }

say "check the bundle's files against MANIFEST.txt"
"$PY" - "$BUNDLE" <<'PY'
import hashlib, os.path as osp, sys
root = sys.argv[1]
for line in open(osp.join(root, 'MANIFEST.txt')):
    if line.startswith('#') or not line.strip():
        continue
    name, size, digest = line.rstrip('\n').split('\t')
    path = osp.join(root, name)
    if not osp.isfile(path) or hashlib.sha256(open(path, 'rb').read()).hexdigest() != digest:
        sys.exit(f'install_offline: {path} is missing or differs from MANIFEST.txt')
PY

say "check that $PY has torch"
"$PY" -c 'import torch, sys
print(f"install_offline: {sys.executable}: Python {sys.version.split()[0]}, torch {torch.__version__},",
      f"CUDA build {torch.version.cuda}, CUDA available: {torch.cuda.is_available()}")' \
  || die "$PY cannot import torch: install the machine's PyTorch first (docs/gpu.md)"
if [ -z "$MMCV_WHEEL" ]; then
  ARCH="$("$PY" "$ROOT/tools/gpu/cuda_arch.py")" \
    || die "no CUDA device: mmcv's CUDA ops cannot be compiled here (give --mmcv-wheel WHL on a CPU machine)"
  command -v nvcc >/dev/null || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] \
    || die "nvcc not found (put it on PATH or set CUDA_HOME)"
fi

say "create $VENV (--system-site-packages over $PY)"
"$PY" -m venv --system-site-packages "$VENV"
VPY="$VENV/bin/python"
# PY inside a venv: its own site-packages are not the "system" ones; add them after ours.
"$PY" - "$VPY" <<'PY'
import os.path as osp, site, subprocess, sys
if sys.prefix != sys.base_prefix:
    code = 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
    target = subprocess.check_output([sys.argv[1], '-c', code], text=True).strip()
    with open(osp.join(target, '_machine_site_packages.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
PY
PIP=("$VPY" -m pip --disable-pip-version-check --no-input -q install --no-index --no-deps --find-links "$BUNDLE")
mapfile -t PINS < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$ROOT/tools/gpu/bundle-requirements.txt")

say "install the build tools of mmcv 2.1.0 (setuptools 69.5.1, wheel)"
"${PIP[@]}" $(printf '%s\n' "${PINS[@]}" | grep -E '^(setuptools==69|wheel==)')

if [ -n "$MMCV_WHEEL" ]; then
  say "install mmcv from $MMCV_WHEEL"
  "${PIP[@]}" "$MMCV_WHEEL"
else
  JOBS="${MAX_JOBS:-$(nproc)}"
  say "compile mmcv 2.1.0 with CUDA ops for TORCH_CUDA_ARCH_LIST=$ARCH, MAX_JOBS=$JOBS (log: $VENV/mmcv-build.log)"
  t_mmcv=$SECONDS
  if ! MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="$JOBS" \
      "$VPY" -m pip --disable-pip-version-check --no-input -v install --no-index --no-deps \
      --no-build-isolation "$BUNDLE"/mmcv-2.1.0.tar.gz >"$VENV/mmcv-build.log" 2>&1; then
    tail -n 40 "$VENV/mmcv-build.log" >&2
    die "mmcv 2.1.0 did not compile (full log: $VENV/mmcv-build.log)"
  fi
  echo "install_offline: mmcv compiled in $((SECONDS - t_mmcv)) s"
fi

say "install the rest of the bundle (mmengine, mmdet, mmsegmentation, their pure-Python needs, setuptools 81)"
"${PIP[@]}" $(printf '%s\n' "${PINS[@]}" | grep -vE '^(mmcv==|setuptools==69|wheel==)')
say "install mmsidetune from its wheel"
"${PIP[@]}" "$BUNDLE"/mmsidetune-*.whl

say "copy the M2IST demo's MiniLM config and tokenizer to $VENV/share/mmsidetune"
mkdir -p "$VENV/share/mmsidetune"
cp -r "$BUNDLE/minilm-l6-tokenizer" "$VENV/share/mmsidetune/"

say "pip check (opencv-python is met by the machine's opencv-python-headless)"
check="$("$VPY" -m pip --disable-pip-version-check check 2>&1 || true)"
mine="$(printf '%s\n' "${PINS[@]}" | sed 's/==.*//' | tr 'A-Z_.' 'a-z--'; echo mmsidetune)"
bad="$(printf '%s\n' "$check" | grep -v '^No broken' \
       | grep -vE 'requires opencv-python, which is not installed' \
       | while read -r who _; do
           printf '%s\n' "$mine" | grep -qx "$(echo "$who" | tr 'A-Z_.' 'a-z--')" && echo "$who"
         done || true)"
if [ -n "$bad" ]; then
  printf '%s\n' "$check" >&2
  die "unmet requirements of bundled packages: $(echo $bad)"
fi

say "check the stack imports (and mmcv's ops on the GPU when there is one)"
(cd / && "$VPY" - <<'PY'
import cv2, torch, mmengine, mmcv, mmdet, mmseg, transformers, mmsidetune  # noqa: F401
from mmcv.ops import get_compiling_cuda_version, nms
assert mmcv.__version__ == '2.1.0', mmcv.__version__
line = (f'install_offline: torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv '
        f'{mmcv.__version__} (ops compiled with CUDA {get_compiling_cuda_version()}), mmdet '
        f'{mmdet.__version__}, mmseg {mmseg.__version__}, transformers {transformers.__version__}')
print(line)
if torch.cuda.is_available() and get_compiling_cuda_version() != 'not available':
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]], device='cuda')
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device='cuda'), 0.5)
    assert keep.tolist() == [0, 2], keep
    print('install_offline: mmcv.ops.nms ran on', torch.cuda.get_device_name())
PY
)
echo "install_offline: done in $((SECONDS - t0)) s; use $VPY (tools/gpu/gpu_check.sh picks it up)"
