# Two commands on a fresh machine:
#   make demo   - builds .venv if needed, fits both estimators on real data, prints and saves results
#   make test   - builds .venv if needed, runs ruff and mypy, then the test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
OUT ?= demo-output

.PHONY: demo test test-slow env clean

env: $(VENV)/.installed

# torch is pinned first: a bare "torch" requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: env
	$(PY) -m benchmarks.demo --out $(OUT)

test: env
	$(PY) -m ruff check tabnas benchmarks tests
	$(PY) -m mypy
	$(PY) -m pytest -n 2 -q

test-slow: env
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
