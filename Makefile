# Every target sets itself up: the first one run creates .venv and installs the pinned packages.
SHELL := /bin/bash
PYTHON_BASE ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
EXP ?= experiments/digits.yaml
ARGS ?=
PORT ?= 5000
MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help
.PHONY: help install tune lr-find test test-fast bench ui clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	@echo "Installing pinned dependencies into $(VENV) (first time: a few minutes)..."
	@$(PY) -m pip install -q --upgrade pip > $(VENV)/install.log 2>&1 \
	  && $(PY) -m pip install -q -e ".[dev]" >> $(VENV)/install.log 2>&1 \
	  || { grep -v 'is ignored: it is neither' $(VENV)/install.log | tail -30; exit 1; }
	@touch $@

install: $(VENV)/.installed ## create .venv and install the package with pinned dependencies

tune: install ## run a sweep: make tune [EXP=experiments/x.yaml] [ARGS="--set train.epochs=5 --resume"]
	$(PY) -m pipeline tune $(EXP) $(ARGS)

lr-find: install ## LR range test alone: make lr-find [EXP=...]
	$(PY) -m pipeline lr-find $(EXP) $(ARGS)

test: install ## run the whole test suite (slow end-to-end sweeps included)
	$(PY) -m pytest -q $(ARGS)

test-fast: install ## the tests without the slow end-to-end sweeps
	$(PY) -m pytest -q -m "not slow" $(ARGS)

bench: install ## run the benchmarks; results in bench/results/*.md
	$(PY) -m bench $(ARGS)

ui: install ## MLflow UI on http://127.0.0.1:$(PORT) over the same store
	@echo "MLflow UI: http://127.0.0.1:$(PORT)  (store $(MLFLOW_TRACKING_URI); Ctrl-C stops it)"
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port $(PORT)

clean: ## remove local results (mlflow.db, mlartifacts, ray_results); keeps .venv
	rm -rf mlflow.db mlartifacts ray_results .pytest_cache
