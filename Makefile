# helm-mlops: one entry point. `make demo` and `make test` bootstrap everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)
PYTEST_ARGS ?=

.PHONY: help setup tools system-deps cluster-tools minio images torch-env mlflow-prev-env cluster-up cluster-down test test-fast lint docs demo bench ct-lint soak plugin-package clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/helm-mlops: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

setup: $(BIN)/helm-mlops tools ## Create .venv (project editable + test extras) and install the pinned tools

tools: ## Install helm (4), helm3, helm3.17, kubectl and ct into .tools/bin (sha256-checked, cached)
	@bash hack/install-tools.sh

system-deps: ## Install the Debian packages the tests start (postgresql, wrk, docker-registry, prometheus) when missing
	@bash hack/install-system-deps.sh

cluster-tools: ## Build kube-apiserver, controller-manager, scheduler, etcd, kwok and kube-state-metrics from Go modules (cached)
	@bash hack/build-cluster-tools.sh
	@bash hack/build-kube-state-metrics.sh >/dev/null

minio: ## Build MinIO from its Go module (cached): the S3 server that verifies signatures in the real tests
	@bash hack/build-minio.sh >/dev/null

cluster-up: cluster-tools $(if $(filter 1,$(REAL_NODES)),setup system-deps images) ## Start the local kwok cluster (kubeconfig path printed); REAL_NODES=1 adds a real node (kubelet + containerd)
	@REAL_NODES=$(REAL_NODES) bash hack/cluster.sh up

cluster-down: ## Stop and delete the local kwok cluster (and its real node: processes, mounts, bridge, iptables rules)
	@bash hack/cluster.sh down

images: system-deps torch-env ## Build the real node's container images from a debootstrap root filesystem (cached)
	@bash hack/build-images.sh

torch-env: ## Create the PyTorch venv the distributed-training tests use (outside the repo, cached)
	@bash hack/torch-env.sh >/dev/null

mlflow-prev-env: $(BIN)/helm-mlops ## Create the venv of MLflow's previous minor release the schema-upgrade test uses (outside the repo, cached)
	@bash hack/mlflow-prev-env.sh >/dev/null

test: setup system-deps ## Run every test (lint, render, real servers, e2e on the local cluster)
	@# The Go builds (CPU) overlap the PyTorch download and the image builds (network, disk).
	@$(MAKE) --no-print-directory -j2 cluster-tools minio images mlflow-prev-env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup ## Unit, lint and render tests only (no real servers, no cluster)
	$(BIN)/python -m pytest -m "not real and not e2e" $(PYTEST_ARGS)

lint: setup ## ruff, ruff format --check, mypy, shellcheck
	$(BIN)/ruff check generator tests charts/*/files
	$(BIN)/ruff format --check generator tests charts/*/files
	$(BIN)/mypy
	$(BIN)/shellcheck -x -P SCRIPTDIR hack/*.sh plugin/*.sh

docs: setup ## Regenerate the values tables in the chart READMEs
	$(BIN)/helm-mlops docs

ct-lint: setup ## chart-testing lint with our config and with ct's upstream defaults, then every ci scenario rendered
	ct lint --all --config ct.yaml
	@if [ -d ../shared/chart-testing ]; then ct lint --all --config ct.yaml \
	  --lint-conf ../shared/chart-testing/lintconf.yaml --chart-yaml-schema ../shared/chart-testing/chart_schema.yaml; fi
	@# ct lint (helm lint) logs a chart's `fail` at INFO level and exits 0: only a render refuses bad values.
	@for f in charts/*/ci/*-values.yaml; do \
	  helm template ct "$${f%/ci/*}" -f "$$f" >/dev/null || { echo "helm template $${f%/ci/*} -f $$f failed" >&2; exit 1; }; \
	done; echo "every ci scenario renders"

demo: setup cluster-tools ## The main job: generate the full-stack preset, lint it, install it (embedded cluster unless a kubeconfig is set); PRESET=name for another
	$(BIN)/helm-mlops demo --preset $${PRESET:-full-stack}

bench: setup system-deps cluster-tools ## Measure performance against peers (CLI, render, inference vs MLServer/KServe); writes docs/benchmarks.md
	$(BIN)/python hack/bench.py

soak: setup system-deps ## The inference runtime for 10 minutes at concurrency 32, one request in ten malformed: every one a 4xx, zero errors, RSS growth under 10%
	$(BIN)/python hack/bench_inference.py --soak $${SOAK_SECONDS:-600}

plugin-package: ## Package the helm plugin: dist/helm-mlops-plugin-VERSION.tgz (Helm 4) and dist/helm3/ (Helm 3, by URL); SIGN_KEY=gpg-key adds .prov files
	@bash hack/plugin-package.sh $(if $(SIGN_KEY),--key '$(SIGN_KEY)')

clean: ## Remove .venv, .tools and the plugin's venvs (the download/build cache outside the repo stays)
	rm -rf $(VENV) .tools .plugin-venv .plugin-venv-* .git/helm-mlops-plugin
