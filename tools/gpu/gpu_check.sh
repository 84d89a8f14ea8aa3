#!/usr/bin/env bash
# Prove the CUDA path on this GPU machine in one command (docs/gpu.md):
#
#   tools/gpu/gpu_check.sh OUT_DIR [--quick] [--dry-run] [--force]
#
# Runs tools/gpu/gpu_check.py with the environment made by tools/gpu/install_offline.sh
# (<repo>/.venv-gpu), or with MMSIDETUNE_GPU_PYTHON, or else python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${MMSIDETUNE_GPU_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv-gpu/bin/python" ]; then PY="$ROOT/.venv-gpu/bin/python"; else PY=python3; fi
fi
exec "$PY" "$ROOT/tools/gpu/gpu_check.py" "$@"
