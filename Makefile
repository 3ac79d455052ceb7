# The two commands of the README: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data
LISTEN ?= 127.0.0.1:8008
SERVER_NAME ?= localhost

.PHONY: run test sytest sytest-update sytest-compare lint typecheck bench clean

$(BIN)/edgehs: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# edgehs with the MIDI, GPIO and camera services on simulated hardware (edgehs/demo.py);
# DATA/edgehs.yaml, devices.yaml and the user demo are made on the first run.
run: $(BIN)/edgehs
	$(BIN)/edgehs demo --data-dir $(DATA) --listen $(LISTEN) --server-name $(SERVER_NAME)

# The JavaScript clients of tests/integration/test_{e2ee_js,browser_client}.py (matrix-js-sdk,
# Hydrogen, playwright-core), from the npm registry as locked; skipped where npm is missing.
NPM := $(shell command -v npm 2>/dev/null)
tests/js/node_modules/.package-lock.json: tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	touch $@

test: $(BIN)/edgehs $(if $(NPM),tests/js/node_modules/.package-lock.json)
	$(BIN)/ruff check edgehs devices tests bench
	$(BIN)/mypy edgehs
	$(BIN)/pytest -q

# SyTest, the Matrix project's black-box suite (../shared/sytest, or SYTEST_DIR), against this
# checkout; fails when a test listed in tests/sytest/passing.txt fails (tests/sytest/gate.py).
# SYTEST_ARGS go to run-tests.pl (e.g. tests/30rooms/10redactions.pl to run one file).
SYTEST_OUT ?= /tmp/edgehs-sytest
sytest: $(BIN)/edgehs
	$(BIN)/python tests/sytest/gate.py --out $(SYTEST_OUT) $(SYTEST_ARGS)

# The same, adding every test that passed to tests/sytest/passing.txt.
sytest-update: $(BIN)/edgehs
	$(BIN)/python tests/sytest/gate.py --out $(SYTEST_OUT) --update $(SYTEST_ARGS)

# SyTest against edgehs and against the Synapse release bench/ pins, passes per directory side by
# side (tests/sytest/compare.py; about 20 minutes).
sytest-compare: $(BIN)/edgehs
	$(BIN)/python tests/sytest/compare.py --out $(SYTEST_OUT)-compare

bench: $(BIN)/edgehs
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
