# Two commands: `make demo` (set up and run the platform end to end) and
# `make test` (set up and run the tests). Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint format bench venv clean-data

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else "error: Python 3.11 or 3.12 is required (e.g. make PYTHON=python3.11 ...)")'
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "error: $(PYTHON) cannot create virtual environments (apt-get install python3-venv)"; exit 1; }
	@java_major=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1); \
	  [ "$${java_major:-0}" -ge 17 ] || { echo "error: Java 17 or newer is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -e ".[dev]"
	@grep -q SPARK_CONF_DIR $(BIN)/activate || echo 'export SPARK_CONF_DIR="$(CURDIR)/spark_conf"  # Spark launches (Feast too) read spark_conf/' >> $(BIN)/activate
	@touch $(STAMP)

demo: venv
	$(BIN)/feature-platform demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python -m bench

clean-data:
	rm -rf data
