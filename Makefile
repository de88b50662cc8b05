# Kota Cerdas. Two commands for a fresh Debian / Ubuntu / Raspberry Pi OS machine:
#   make demo   broker + InfluxDB + ingest + a simulated Jakarta, on loopback
#   make test   the whole suite against real Mosquitto and InfluxDB
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest-xdist: three workers, each with its own services; an idle one steals tests from a busy
# one (README.md, "Development"). PYTEST_ARGS="-n 0" runs in one process, for debugging.
PARALLEL := -n 3 --dist worksteal

.PHONY: help demo test test-fast pytest lint services venv bench clean

help:
	@echo "make demo    run broker, InfluxDB, ingest and the simulated city (Ctrl-C stops all)"
	@echo "make test    lint, type-check and run the test suite on real services"
	@echo "make bench   kota bench ingest (drain, live, floors)"
	@echo "make test-fast  the tests not marked slow (about a minute on 3 workers): the inner loop"
	@echo "make lint    ruff + mypy + lint-imports (the layering, docs/architecture.md) only"
	@echo "make clean   remove .venv and run/"

$(BIN)/.installed: pyproject.toml
	@bash scripts/install-services.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

services:
	@bash scripts/install-services.sh demo

demo: venv services
	$(BIN)/kota demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: venv services
	@bash scripts/install-services.sh test
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PARALLEL) --durations=25 $(PYTEST_ARGS)

test: lint pytest

# The inner loop: every test not marked slow (docs/architecture.md, "Tests").
test-fast: venv services
	@bash scripts/install-services.sh test
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PARALLEL) -m "not slow" $(PYTEST_ARGS)

bench: venv services
	@bash scripts/install-services.sh bench
	$(BIN)/kota bench ingest

clean:
	rm -rf $(VENV) run
