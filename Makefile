# ccpulse — the two commands of the README, and what they need.
#   make up     broker + worker + simulated traffic on this machine; Ctrl-C stops everything
#   make test   lint, type check, unit and integration tests (a real Kafka broker, no Docker)
#   make bench  ccpulse beside the raw floor, Quix Streams and Faust (docs/performance.md)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: help up test lint unit integration bench clean broker-stop

help:
	@sed -n 's/^#   //p' Makefile

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ccpulse needs Python 3.11+ (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

up: $(STAMP)
	$(BIN)/ccpulse up

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests deploy/local
	$(BIN)/ruff format --check pipeline tests deploy/local
	$(BIN)/mypy pipeline deploy/local/kafka.py

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

# the side-by-side performance run (docs/performance.md): EVENTS=2000000 by default, ~35 min here;
# a peer that has not read the topic after PEER_TIMEOUT seconds is recorded as failed (the Faust
# peer stalls: docs/performance.md)
EVENTS ?= 2000000
PEER_TIMEOUT ?= 1200
bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench.performance --events $(EVENTS) --peer-timeout $(PEER_TIMEOUT)

broker-stop: $(STAMP)
	$(BIN)/ccpulse broker stop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
