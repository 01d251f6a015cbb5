# One entry point for set-up, tests and benchmarks. Every target sets itself up from a
# fresh clone: a venv (seeing a system torch if one is importable), torch==2.13.0 only if
# no torch is importable, the other dependencies pinned against that torch, and the
# extension built against it with --no-build-isolation.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_SPEC ?= torch==2.13.0
CONSTRAINTS := $(VENV)/constraints.txt
DEPS := "numpy" "ninja" "pybind11" "pytest>=8" "pytest-benchmark>=4" "av>=18" "pillow" "ruff" "triton>=3.4" "tqdm" "pyyaml" "matplotlib" "onnx" "onnxscript" "onnxruntime"
PYTEST_ARGS ?=

.PHONY: setup test test-fast bench demo lint clean

setup: $(VENV)/.built

$(CONSTRAINTS):
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH_SPEC)
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $@

$(VENV)/.deps: $(CONSTRAINTS) Makefile
	$(PIP) install -c $(CONSTRAINTS) $(DEPS)
	touch $@

$(VENV)/.built: $(VENV)/.deps setup.py pyproject.toml stc_ext/_extension_sources.py $(shell find csrc -type f)
	$(PIP) install -c $(CONSTRAINTS) --no-build-isolation --no-deps -e .
	touch $@

# Without a GPU, Triton kernels run on CPU tensors through its interpreter.
TRITON_ENV = TRITON_INTERPRET=$${TRITON_INTERPRET:-$$($(PY) -c "import torch; print(0 if torch.cuda.is_available() else 1)")}

# The whole suite (what CI runs).
test: setup
	$(TRITON_ENV) $(PY) -m pytest tests $(PYTEST_ARGS)

# The edit loop: everything but the tests marked slow (nvcc, inductor, JIT builds, DDP, ...).
test-fast: setup
	$(TRITON_ENV) $(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest bench --benchmark-columns=median,iqr,rounds --benchmark-sort=name \
		--benchmark-json=bench/results/latest.json $(PYTEST_ARGS)

# The main job, on the CPU in a few minutes: write the synthetic dataset, train a small
# STC-ResNet on it (python/configs/demo.yaml), evaluate it with the paper's test protocol.
DEMO_DIR ?= runs/demo
demo: setup
	$(PY) -m stc_ext synth --out $(DEMO_DIR)/data --size 64 --frames 64 --workers 2 --force
	$(PY) -m stc_ext train --config python/configs/demo.yaml --root $(DEMO_DIR)/data \
		--out-dir $(DEMO_DIR)/train --overwrite
	$(PY) -m stc_ext evaluate --checkpoint $(DEMO_DIR)/train/best.pt --threads 1 \
		--out $(DEMO_DIR)/eval.json

LINT_PATHS := stc_ext tests bench python setup.py
lint: setup
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

clean:
	rm -rf build *.egg-info stc_ext/*.so
