# tradecore: `make demo` and `make test` work on a fresh clone (they create .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tradecore demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(VENV)/.bench-installed

# Every figure beside its target, and the load average at the start and the end (bench/__main__.py).
bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench

clean:
	rm -rf var/demo reports .pytest_cache
