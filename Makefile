# microgpt-parity. Every variable can be overridden: `make parity STEPS=60`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
# The names dataset: the shared copy beside the checkout when there is one;
# otherwise the loader's own order (MICROGPT_DATA, the cache, a checked download).
DATA ?= $(firstword $(wildcard ../shared/data/names.txt))
DATA_FLAG := $(if $(DATA),--data $(DATA),)
# Steps of `make parity`: the seed's whole run (about 20 s here, with the fused engine).
STEPS ?= 1000
OUT ?= out
PYTEST_ARGS ?=

.PHONY: install parity train test test-slow bench lint clean

PIP := $(PY) -m pip install --disable-pip-version-check --progress-bar on

$(VENV)/.installed: pyproject.toml Makefile
	@echo "== creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "== installing torch $(TORCH_VERSION) (CPU wheel), numpy, matplotlib, pytest, ruff, hypothesis"
	$(PIP) torch==$(TORCH_VERSION) numpy matplotlib pytest ruff hypothesis "setuptools>=70.1"
	@echo "== installing microgpt-parity itself, editable: the commands microgpt-parity, microgpt-pure, microgpt-torch"
	$(PIP) --no-build-isolation -e ".[torch,plot,dev]"
	touch $@

install: $(VENV)/.installed  ## create .venv with torch, numpy, matplotlib, pytest, ruff, hypothesis and this project

parity: install  ## the main job: pure vs torch_ref at every step; report and plot in $(OUT)/
	$(strip $(PY) -m parity run $(DATA_FLAG) --steps $(STEPS) --json $(OUT)/parity.json --plot $(OUT)/parity.png)

mutants: install  ## inject each bug of the catalogue and show the harness catches and localises it
	$(PY) -m parity mutants --json $(OUT)/mutants.json

train:  ## train pure (standard library only) with the seed's defaults: 1000 steps, then 20 samples
	$(strip $(PYTHON) -m pure train $(DATA_FLAG))

test: install  ## the test suite (under ~5 minutes); long checks are in test-slow
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install  ## the long checks: full 1000-step runs against the seed's output
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# The seed program beside the checkout, and bun to run it (installed into the git-ignored .bench/ when missing).
SEED_PROGRAM ?= $(firstword $(wildcard ../shared/seed/microgpt.ts))
BENCH_ARGS ?=

bench: install  ## the speed goals (pure fused vs microgpt.py and the seed under bun, parity, the large config), as ratios from one run
	@command -v bun >/dev/null || [ -x .bench/node_modules/.bin/bun ] || npm install --prefix .bench --no-save --no-fund --no-audit bun \
		|| echo "note: bun could not be installed (npm install --prefix .bench bun); the goals that need it are not measured"
	$(strip $(PY) -m parity.commands.bench $(DATA_FLAG) $(if $(SEED_PROGRAM),--seed-program $(SEED_PROGRAM)) $(BENCH_ARGS))

lint: install
	$(PY) -m ruff check pure torch_ref parity tests

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
