# linkhop: `make dev` runs everything locally, `make test` runs the whole suite.
# Both set up the virtualenv and (through the linkhop CLI / pytest fixtures) install,
# start or reuse PostgreSQL, Redis and Apache Kafka on loopback under var/.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: dev test test-faults stop lint bench venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/linkhop dev

test: $(STAMP)
	$(BIN)/python -m pytest

# The fault tests alone (also part of `make test`): they run their own stack instance
# (var/stack-faults, ports +100) and never stop the shared one.
test-faults: $(STAMP)
	$(BIN)/python -m pytest -m faults

stop: $(STAMP)
	$(BIN)/linkhop stop

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
