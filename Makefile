# readygate: `make demo` runs the demo release gate, `make test` runs the test suite.
# Both set up everything they need: OS packages (apt-get), a .venv, the Python deps.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: demo test test-fast lint typecheck check os-deps venv clean

demo: os-deps venv
	$(BIN)/readygate demo --out $(OUT)

test: os-deps venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

check: lint typecheck test

os-deps:
	@bash scripts/install-os-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
