# readygate: `make demo` runs the demo release gate, `make test` runs the test suite.
# Both set up everything they need: OS packages (apt-get), a .venv, the Python deps.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: demo test test-fast lint typecheck check bench os-deps venv peers schema-check bundles-check clean

demo: os-deps venv
	$(BIN)/readygate demo --out $(OUT)

# # peers: the real Jaeger, VictoriaMetrics, ... built from Go modules (tests/peers); `demo` needs no Go.
# three workers on 2 cores (the suite mostly waits on servers and deadlines), a file per unit (conftest.py)
test: os-deps venv peers schema-check bundles-check
	$(BIN)/python -m pytest -n 3 --dist loadfile

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

check: lint typecheck test

# Every benchmark in BENCHMARKS.md, one after the other (about 6 min on 2 cores).
bench: os-deps venv
	$(BIN)/python -m bench.time_to_verdict --runs 10
	$(BIN)/python -m bench.demo_wall --runs 3
	$(BIN)/python -m bench.render
	$(BIN)/python -m bench.secret_scan
	$(BIN)/python -m bench.probe_throughput
	$(BIN)/python -m bench.scheduler_scale
	$(BIN)/python -m bench.browser_overhead --runs 10
	$(BIN)/python -m bench.probe_scaling
	$(BIN)/python -m bench.shards

peers:
	@bash scripts/install-peers.sh

# the Prometheus Operator CRD validators the deploy/ manifests are checked with (npm registry)
schema-check: deploy/schema-check/node_modules/.installed

deploy/schema-check/node_modules/.installed: deploy/schema-check/package-lock.json
	npm ci --prefix deploy/schema-check --no-audit --no-fund --loglevel=error
	@touch $@

# The committed browser bundles are what their pinned npm packages build (npm registry):
# web-vitals for browser journeys, @sentry/browser + posthog-js for the demo page.
bundles-check:
	bash scripts/build-web-vitals.sh
	bash scripts/build-demo-frontend.sh
	git diff --exit-code --stat -- demo/frontend/dist

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
