# tradecore: `make demo` and `make test` work on a fresh clone (they create .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean bytecode

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The project's own modules as bytecode, as installing a package compiles it: where PYTHONDONTWRITEBYTECODE
# is set (CI machines, containers), every short command and each of the e2e tests' CLI processes would
# otherwise compile every module from source at start-up. Only changed files are compiled again.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j0 api application domain infrastructure projections bench >/dev/null

demo: bytecode
	$(BIN)/tradecore demo

# Two pytest-xdist workers (CI's machine has two cores; a serial run uses one at a time, pytest waiting on
# each CLI process it starts): each test module runs whole on one worker, in collection order, so the long e2e
# modules start first (tests/conftest.py ONE_WORKER). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2

test: bytecode
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(VENV)/.bench-installed

# Every figure beside its target, and the load average at the start and the end (bench/__main__.py).
bench: $(VENV)/.bench-installed bytecode
	$(BIN)/python -m bench

clean:
	rm -rf var/demo reports .pytest_cache
