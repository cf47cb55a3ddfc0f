# microgpt-parity. Every variable can be overridden: `make parity STEPS=1000`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
# The names dataset: the shared copy beside the checkout when there is one;
# otherwise the loader's own order (MICROGPT_DATA, the cache, a checked download).
DATA ?= $(firstword $(wildcard ../shared/data/names.txt))
DATA_FLAG := $(if $(DATA),--data $(DATA),)
# Steps of `make parity`: 60 fit in under a minute here; STEPS=1000 is the seed's whole run (~10 minutes).
STEPS ?= 60
OUT ?= out
PYTEST_ARGS ?=

.PHONY: install parity train test test-slow bench lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION) numpy matplotlib pytest ruff
	touch $@

install: $(VENV)/.installed  ## create .venv with torch, numpy, matplotlib, pytest, ruff

parity: install  ## the main job: pure vs torch_ref at every step; report and plot in $(OUT)/
	$(PY) -m parity run $(DATA_FLAG) --steps $(STEPS) --json $(OUT)/parity.json --plot $(OUT)/parity.png

mutants: install  ## inject each bug of the catalogue and show the harness catches and localises it
	$(PY) -m parity mutants --json $(OUT)/mutants.json

train:  ## train pure (standard library only) with the seed's defaults: 1000 steps, then 20 samples
	$(PYTHON) -m pure train $(DATA_FLAG)

test: install  ## the test suite (under ~5 minutes); long checks are in test-slow
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install  ## the long checks: full 1000-step runs against the seed's output
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

bench: install  ## steps per second of each implementation, as ratios from one run
	$(PY) -m parity.bench $(DATA_FLAG)

lint: install
	$(PY) -m ruff check pure torch_ref parity tests

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
