#!/usr/bin/env bash
# The offline install tested on a CPU machine (`make gpu-bundle-check`; needs network and a few
# minutes, so it is not part of `make test`). docs/gpu.md.
#
#   tools/gpu/check_offline_install.sh [WORK_DIR]      (default: a new temporary folder)
#
# 1. tools/gpu/make_bundle.py for CPython 3.11 (the CPU machines' Python; the GPU target is 3.12);
# 2. a stand-in for the GPU machine: a fresh Python 3.11 venv with only what the GPU machine has
#    (torch 2.13.0 CPU, numpy, scipy, matplotlib, opencv-python-headless, transformers, pytest);
# 3. tools/gpu/install_offline.sh from the bundle over that venv (pip --no-index), with the
#    prebuilt CPU mmcv 2.1.0 wheel (--mmcv-wheel; compiling it takes 15-25 minutes on 2 cores);
# 4. in the installed environment: the CUDA tier (skips without CUDA) and CPU tests run against
#    the installed mmsidetune wheel, and gpu_check.sh refusing without CUDA (exit 2).
#
#   PYTHON      Python 3.11 for the stand-in (default python3.11)
#   BUNDLE_PY   interpreter that runs make_bundle.py (default: <repo>/.venv/bin/python, or python3)
#   MMCV_WHEEL  default: mmcv-2.1.0-cp311-cp311-linux_x86_64.whl in MMSIDETUNE_WHEELHOUSE
#               (as tools/bootstrap.sh: <repo>/../shared/wheelhouse)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-$(mktemp -d -t gpu-bundle-check-XXXX)}"
PYTHON="${PYTHON:-python3.11}"
BUNDLE_PY="${BUNDLE_PY:-$ROOT/.venv/bin/python}"
[ -x "$BUNDLE_PY" ] || BUNDLE_PY=python3
WHEELHOUSE="${MMSIDETUNE_WHEELHOUSE:-$ROOT/../shared/wheelhouse}"
MMCV_WHEEL="${MMCV_WHEEL:-$WHEELHOUSE/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl}"
[ -f "$MMCV_WHEEL" ] || { echo "check_offline_install: no mmcv wheel at $MMCV_WHEEL (set MMCV_WHEEL)" >&2; exit 1; }
mkdir -p "$WORK"
[ -z "$(ls -A "$WORK")" ] || { echo "check_offline_install: $WORK is not empty" >&2; exit 1; }
t0=$SECONDS
say() { echo "check_offline_install: [$((SECONDS - t0)) s] $*"; }

say "1/4 bundle for CPython 3.11 in $WORK/bundle"
t=$SECONDS; "$BUNDLE_PY" "$ROOT/tools/gpu/make_bundle.py" "$WORK/bundle" --python 3.11 >"$WORK/bundle.log" 2>&1 \
  || { tail -20 "$WORK/bundle.log" >&2; exit 1; }
tail -1 "$WORK/bundle.log"; t_bundle=$((SECONDS - t))

say "2/4 stand-in for the GPU machine: $WORK/machine"
"$PYTHON" -m venv "$WORK/machine"
"$WORK/machine/bin/python" -m pip -q install "torch==2.13.0" numpy scipy matplotlib opencv-python-headless transformers pytest

say "3/4 offline install over it into $WORK/venv"
t=$SECONDS
"$ROOT/tools/gpu/install_offline.sh" "$WORK/bundle" --python "$WORK/machine/bin/python" --venv "$WORK/venv" --mmcv-wheel "$MMCV_WHEEL"
t_install=$((SECONDS - t))
# the machine's packages stay where they are: none of them may land in the new venv
inside="$(ls "$WORK/venv/lib/"python3.*/site-packages \
          | grep -iE '^(torch|numpy|scipy|transformers|opencv)' || true)"
[ -z "$inside" ] || { echo "check_offline_install: machine packages put into the venv: $inside" >&2
                      exit 1; }

say "4/4 tests with the installed stack (python -P: mmsidetune from its wheel, not this checkout)"
(cd "$ROOT" && OMP_NUM_THREADS=1 "$WORK/venv/bin/python" -P -m pytest -q -p no:cacheprovider -rs \
   tests/test_gpu tests/test_tuners/test_e3va_reference.py tests/test_cost/test_memory.py)
"$WORK/venv/bin/python" -P -c 'import mmsidetune, sys; print("check_offline_install: mmsidetune from", mmsidetune.__file__); sys.exit("/site-packages/" not in mmsidetune.__file__)'
set +e
MMSIDETUNE_GPU_PYTHON="$WORK/venv/bin/python" "$ROOT/tools/gpu/gpu_check.sh" "$WORK/out"; rc=$?
set -e
[ "$rc" = 2 ] || { echo "check_offline_install: gpu_check.sh without CUDA exited $rc, expected 2" >&2; exit 1; }
size="$(sed -n 2p "$WORK/bundle/MANIFEST.txt" | sed "s/^# //; s/; file.*//")"
say "PASSED: bundle ${t_bundle} s (${size}), offline install ${t_install} s; folder $WORK"
