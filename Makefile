# Every target sets itself up: the first one run creates .venv and installs the pinned packages.
SHELL := /bin/bash
PYTHON_BASE ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
EXP ?= experiments/digits.yaml
ARGS ?=
# Tests run in two pytest-xdist workers: one worker's end-to-end sweeps leave the second core
# idle ~40% of the time on a 2-core machine. TEST_WORKERS=0: one process (e.g. for ARGS=-s).
TEST_WORKERS ?= 2
PYTEST_WORKERS = -n $(TEST_WORKERS) --dist worksteal
PORT ?= 5000
MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
# CLUSTER=aws|local runs on the Ray cluster of cluster/$(CLUSTER).yaml; empty: on this machine.
CLUSTER ?=
CLUSTER_YAML = cluster/$(CLUSTER).yaml
RAY := $(VENV)/bin/ray
JOB ?=
BUCKET ?=
# Where a sweep submitted to each cluster keeps its results ($$RESULTS_BUCKET is the head's).
CLUSTER_STORAGE_aws = --set storage.path=s3://\$$RESULTS_BUCKET/ray_results
CLUSTER_STORAGE_local =
REQUIRE_CLUSTER = @test -f "$(CLUSTER_YAML)" || { echo "error: set CLUSTER=aws or CLUSTER=local (cluster/NAME.yaml)" >&2; exit 2; }
export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help
.PHONY: help install tune tune-logs lr-find test test-fast bench ui clean cluster-up cluster-down \
	cluster-status cluster-iam best compare browser-deps imagefolder-demo

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

tune: install ## run a sweep: make tune [EXP=experiments/x.yaml] [ARGS="--set train.epochs=5 --resume"] [CLUSTER=aws|local]
ifeq ($(CLUSTER),)
	$(PY) -m pipeline tune $(EXP) $(ARGS)
else
	$(REQUIRE_CLUSTER)
	$(RAY) rsync-up $(CLUSTER_YAML)
	@job=$${JOB:-tune-$$(date +%Y%m%d-%H%M%S)}; \
	  echo "Ray job $$job on $(CLUSTER): Ctrl-C detaches, the sweep goes on; reattach with: make tune-logs CLUSTER=$(CLUSTER) JOB=$$job"; \
	  $(RAY) exec $(CLUSTER_YAML) "cd ~/pipeline && ray job submit --submission-id $$job --working-dir . -- env MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python -m pipeline tune $(EXP) $(CLUSTER_STORAGE_$(CLUSTER)) $(ARGS)"
endif

tune-logs: install ## follow a cluster sweep again (after Ctrl-C): make tune-logs CLUSTER=aws JOB=tune-...
	$(REQUIRE_CLUSTER)
	@test -n "$(JOB)" || { echo "error: set JOB=<submission id> (make cluster-status lists them)" >&2; exit 2; }
	$(RAY) exec $(CLUSTER_YAML) "ray job logs --follow $(JOB)"

imagefolder-demo: install ## write a synthetic image folder (3 shape classes) to data/shapes for experiments/imagefolder.yaml
	$(PY) -m bench.imagefolder_data data/shapes --per-class 200

lr-find: install ## LR range test alone: make lr-find [EXP=...]
	$(PY) -m pipeline lr-find $(EXP) $(ARGS)

best: install ## the registered champion model of EXP, its config and how to load it: make best [EXP=...]
	$(PY) -m pipeline best $(EXP) $(ARGS)

compare: install ## grid vs random vs bayes on EXP at one trial budget: make compare [EXP=...] [ARGS="--budget 12 --seeds 2"]
	$(PY) -m pipeline compare $(EXP) $(ARGS)

# The MLflow UI test drives headless Chromium; when apt-get cannot install it, that test is
# skipped (and says why), nothing else.
browser-deps: ## install chromium + chromium-driver (Debian) for the browser test when missing
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "Installing chromium and chromium-driver for the MLflow UI test (apt-get)..."; \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq chromium chromium-driver; } > $(VENV)/browser-deps.log 2>&1 \
	  || echo "warning: could not install chromium (see $(VENV)/browser-deps.log); the browser test will be skipped"; }

test: install browser-deps ## run the whole test suite (slow end-to-end sweeps included); TEST_WORKERS=0 runs it in one process
	$(PY) -m pytest -q $(PYTEST_WORKERS) $(ARGS)

test-fast: install ## the tests without the slow end-to-end sweeps
	$(PY) -m pytest -q -m "not slow" $(PYTEST_WORKERS) $(ARGS)

$(VENV)/.bench-installed: $(VENV)/.installed
	@echo "Installing the benchmark extra (Optuna, a baseline) into $(VENV)..."
	@$(PY) -m pip install -q -e ".[dev,bench]" > $(VENV)/install-bench.log 2>&1 \
	  || { grep -v 'is ignored: it is neither' $(VENV)/install-bench.log | tail -30; exit 1; }
	@touch $@

bench: $(VENV)/.bench-installed ## run the benchmarks (ARGS=bayes: one of them); results in bench/results/*.md
	$(PY) -m bench $(ARGS)

ui: install ## MLflow UI on http://127.0.0.1:$(PORT) over the same store; CLUSTER=aws|local: the head's, tunnelled
ifeq ($(CLUSTER),)
	@echo "MLflow UI: http://127.0.0.1:$(PORT)  (store $(MLFLOW_TRACKING_URI); Ctrl-C stops it)"
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port $(PORT)
else
	$(REQUIRE_CLUSTER)
	@echo "MLflow UI: http://127.0.0.1:5000  Ray dashboard: http://127.0.0.1:8265  (open while this shell on the head is)"
	$(RAY) attach $(CLUSTER_YAML) -p 5000 -p 8265
endif

cluster-up: install ## create or update a Ray cluster: make cluster-up CLUSTER=aws|local
	$(REQUIRE_CLUSTER)
	$(RAY) up -y $(CLUSTER_YAML)

cluster-down: install ## tear a cluster down; its MLflow database is copied to mlflow-$(CLUSTER).db first
	$(REQUIRE_CLUSTER)
	-$(RAY) rsync-down $(CLUSTER_YAML) '~/mlflow.db' mlflow-$(CLUSTER).db
	$(RAY) down -y $(CLUSTER_YAML)

cluster-status: install ## nodes, pending demand and sweeps (Ray jobs) of a cluster: CLUSTER=aws|local
	$(REQUIRE_CLUSTER)
	$(RAY) exec $(CLUSTER_YAML) "ray status; ray list jobs"

cluster-iam: install ## once per AWS account: instance profiles that reach only BUCKET: make cluster-iam BUCKET=...
	@test -n "$(BUCKET)" || { echo "error: set BUCKET=<results bucket>" >&2; exit 2; }
	$(PY) cluster/iam.py --bucket $(BUCKET)

clean: ## remove local results (mlflow.db, mlartifacts, ray_results); keeps .venv
	rm -rf mlflow.db mlflow.db.lock mlartifacts ray_results .pytest_cache
