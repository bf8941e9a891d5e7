# Two commands on a fresh machine with python3 and make: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow bench lint reproduce clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/study run

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/study bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check study tests scripts
	$(BIN)/mypy

reproduce: $(STAMP)
	bash scripts/reproduce_all.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
