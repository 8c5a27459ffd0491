# Every target sets itself up: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,mpi]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/mlxrun run configs/demo.toml

lint: install
	$(BIN)/ruff check mlxrun tests benchmarks
	$(BIN)/ruff format --check mlxrun tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

check: install
	$(BIN)/mlxrun check

bench: install
	$(BIN)/python benchmarks/launcher.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
