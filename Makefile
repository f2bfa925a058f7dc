# dataflywheel.blueprint: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
BIN         := $(VENV)/bin
# The venv's interpreter: the distribution's python3 when it is 3.11 or newer and has venv (Debian's is built
# with PGO and LTO; a source build such as pyenv's default is not, and runs Ansible about 15 % slower), else
# the first python3 on PATH.
PYTHON      ?= $(or $(firstword $(foreach p,/usr/bin/python3 python3,$(shell $(p) -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $(p)))),python3)
PROFILE     ?= vanilla
CACHE_DIR   ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/dataflywheel-blueprint
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Python env with ansible, molecule, linters

# ---------------------------------------------------------------- local test cluster
.PHONY: binaries
binaries: ## build kube-apiserver, etcd, kwok, helm, helm-diff, the kyverno CLI from the Go modules (cached)
	bash tests/sim/build-binaries.sh all

.PHONY: search-engine
search-engine: ## build the tests' search engine: OpenSearch from Maven Central (cached; tests/sim/search_engine)
	bash tests/sim/search_engine/build.sh

.PHONY: sample-logs
sample-logs: venv ## write N realistic tool-calling log records: make sample-logs N=1000 OUT=logs.jsonl
	$(PY) tests/sim/sample_logs.py --records $(or $(N),1000) --output $(or $(OUT),sample-logs.jsonl)

.PHONY: cluster-up
cluster-up: venv binaries ## start the local cluster: make cluster-up PROFILE=vanilla|openshift|pcai|nutanix
	$(PY) tests/sim/cluster.py up --profile $(PROFILE)
	@echo "use it with:  eval \"\$$($(PY) tests/sim/cluster.py env --profile $(PROFILE))\""

.PHONY: cluster-down
cluster-down: ## stop the local cluster of PROFILE (ALL=1: every profile)
	@if [ -x $(PY) ]; then $(PY) tests/sim/cluster.py down $(if $(ALL),--all,--profile $(PROFILE)); fi

.PHONY: services-down
services-down: ## stop the service simulators make demo started
	@if [ -x $(PY) ]; then $(PY) tests/sim/services.py down; fi

.PHONY: cluster-status
cluster-status: ## list local clusters
	$(PY) tests/sim/cluster.py status

# ---------------------------------------------------------------- demo
.PHONY: demo
demo: venv binaries search-engine ## bring up the local cluster and simulators, run site.yml against inventories/local
	@started=$$(date +%s); \
	$(PY) tests/sim/cluster.py up --profile $(PROFILE) >/dev/null && \
	eval "$$($(PY) tests/sim/cluster.py env --profile $(PROFILE))" && \
	eval "$$($(PY) tests/sim/services.py up)" && \
	$(BIN)/ansible-playbook -i inventories/local site.yml $(DEMO_ARGS) && \
	$(PY) tests/tools/report_summary.py reports && \
	echo "demo: report in $(CURDIR)/reports/local-cluster/report.html ($$(( $$(date +%s) - started )) s)"

.PHONY: diagnose
diagnose: venv ## the read-only doctor against the local cluster of PROFILE (run make demo first); report in reports/
	eval "$$($(PY) tests/sim/cluster.py env --profile $(PROFILE))" && \
	eval "$$($(PY) tests/sim/services.py up)" && \
	$(BIN)/ansible-playbook -i inventories/local playbooks/diagnose.yml $(DIAGNOSE_ARGS) && \
	echo "diagnose: report in $(CURDIR)/reports/local-cluster/diagnosis.html"

# ---------------------------------------------------------------- AWX execution environment
.PHONY: ee-context
ee-context: venv ## execution environment build context in .cache/ee/context (what `ansible-builder build` builds)
	rm -rf .cache/ee && mkdir -p .cache/ee
	$(BIN)/ansible-builder create -f execution-environment.yml -c .cache/ee/context --output-filename Containerfile
	@echo "build it with: ansible-builder build -f execution-environment.yml -t dataflywheel-ee:$$(sed -n 's/^version: //p' galaxy.yml)"

# ---------------------------------------------------------------- tests
PY_PATHS := $(wildcard plugins tests)
.PHONY: lint
lint: venv ## ruff, yamllint, ansible-lint (production profile)
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS) || { echo "run: make fmt"; exit 1; }
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --offline --profile production
	$(BIN)/antsibull-changelog lint

.PHONY: changelog
changelog: venv ## fold changelogs/fragments into the release of galaxy.yml's version; rewrite CHANGELOG.rst
	$(BIN)/antsibull-changelog release --version $$(sed -n 's/^version: //p' galaxy.yml) --update-existing

.PHONY: docs
docs: venv ## regenerate docs/troubleshooting.md's unit table from the units' Symptom/Cause/Fix/Check blocks
	$(PY) tests/tools/troubleshooting.py

.PHONY: fmt
fmt: venv ## format Python with ruff
	$(BIN)/ruff format $(PY_PATHS)
	$(BIN)/ruff check --fix $(PY_PATHS)

SANITY_ROOT := .cache/sanity/ansible_collections/dataflywheel/blueprint
.PHONY: sanity
sanity: venv ## ansible-test sanity on a copy of the collection in an ansible_collections tree
	$(PY) tests/tools/install_get_pip_standin.py
	rm -rf .cache/sanity && mkdir -p $(SANITY_ROOT)
	git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/' | xargs -0 -I{} cp --parents {} $(SANITY_ROOT)/
	# kubernetes.core beside it: the modules use its doc fragment and module_utils (galaxy.yml dependency)
	mkdir -p .cache/sanity/ansible_collections/kubernetes && cp -r $$($(PY) -c 'import ansible_collections.kubernetes.core as c; print(list(c.__path__)[0])') .cache/sanity/ansible_collections/kubernetes/core
	cd $(SANITY_ROOT) && git init -q && git add -A && \
	  $(CURDIR)/$(BIN)/ansible-test sanity --python $$($(CURDIR)/$(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
	    --local --color no --exclude tests/sim/ --exclude tests/tools/ --exclude tests/fixtures/

.PHONY: unit
unit: venv ## pytest: unit tests (no cluster)
	$(BIN)/pytest tests/unit -q

# Integration tests run in TEST_WORKERS pytest-xdist workers (0: one process), each with its own local
# clusters; a test file stays on one worker (tests/conftest.py says how files are grouped). Three workers
# were slower than two on 2 cores (25 min 58 s against 24 min 18 s for make test): each worker runs its own
# clusters, and the CPU is already the limit.
TEST_WORKERS ?= 2
XDIST := $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope)
.PHONY: integration
integration: venv binaries search-engine gpu-host-deps ## pytest: tests against the local cluster and simulators (TEST_WORKERS=2)
	$(BIN)/pytest tests/integration -q -m "not wip" $(XDIST) --durations=20

.PHONY: test-wip
test-wip: venv binaries search-engine gpu-host-deps ## tests of open issues not yet proven green (marker wip); not part of make test
	$(BIN)/pytest tests/integration -q -m wip; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "test-wip: no test is marked wip"; else exit $$rc; fi

.PHONY: molecule
molecule: venv binaries ## molecule test for every scenario
	eval "$$($(PY) tests/sim/cluster.py env --profile $(PROFILE))" && \
	for s in $$(ls molecule | grep -vx gpu_host); do $(BIN)/molecule test -s $$s || exit 1; done

.PHONY: molecule-gpu-host
molecule-gpu-host: venv gpu-host-deps ## molecule gpu_host: GPU host roles on a Debian 12 rootfs via chroot (root; cached in $(CACHE_DIR)/gpu_host)
	$(BIN)/molecule test -s gpu_host

.PHONY: gpu-host-deps
gpu-host-deps: ## Debian packages the GPU host tests use: debootstrap, containerd, zstd (needs root)
	command -v debootstrap >/dev/null && command -v containerd >/dev/null && command -v zstd >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap containerd zstd; }

.PHONY: test
test: venv binaries search-engine gpu-host-deps ## everything CI runs: static checks, integration, molecule side by side
	@started=$$(date +%s); \
	$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target SIDE_NICE="nice -n 10" test-static integration test-molecule; \
	rc=$$?; took=$$(( $$(date +%s) - started )); \
	if [ $$rc -eq 0 ]; then echo "make test: all passed in $$((took / 60)) min $$((took % 60)) s"; \
	else echo "make test: FAILED after $$((took / 60)) min $$((took % 60)) s (the failing part's output is above)"; exit $$rc; fi

# The three parts of make test run side by side (TEST_JOBS=1: one after the other); each part's output is
# printed as one block when it ends. Most of the integration tests' time is spent waiting on the API
# server, the simulators and helm, which the static checks and molecule fill. The integration tests are
# the longest part, so make test runs the other two at a lower priority (SIDE_NICE): they use the CPU the
# integration tests leave and still end long before them.
TEST_JOBS ?= 3
SIDE_NICE ?=
.PHONY: test-static
test-static: venv ## lint, ansible-test sanity, unit tests (one after the other)
	$(SIDE_NICE) $(MAKE) --no-print-directory lint && $(SIDE_NICE) $(MAKE) --no-print-directory sanity && \
	  $(SIDE_NICE) $(MAKE) --no-print-directory unit

.PHONY: test-molecule
test-molecule: venv binaries gpu-host-deps ## molecule default, then gpu_host
	$(SIDE_NICE) $(MAKE) --no-print-directory molecule && $(SIDE_NICE) $(MAKE) --no-print-directory molecule-gpu-host

.PHONY: bench
bench: venv search-engine binaries ## benchmarks (not tests): flywheel job waits, bulk loading, no-op rerun of the cluster stages
	$(PY) tests/bench/wait_requests.py
	$(PY) tests/bench/bulk_load.py
	$(PY) tests/bench/cluster_rerun.py

.PHONY: bench-clusters
bench-clusters: venv binaries ## benchmark: site.yml on four local clusters in one run vs one cluster
	$(PY) tests/bench/multi_cluster.py

.PHONY: report-screenshot
report-screenshot: ## PNG of reports/local-cluster/report.html with Debian's headless chromium (run make demo first)
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	  --disable-component-update --disable-sync --user-data-dir=$$(mktemp -d) --window-size=1100,1000 \
	  --screenshot=reports/local-cluster/report.png file://$(CURDIR)/reports/local-cluster/report.html
	@echo "screenshot: reports/local-cluster/report.png"

.PHONY: clean
clean: cluster-down ## remove the venv and local caches of this checkout (not the binary cache)
	rm -rf $(VENV) .cache tests/output .pytest_cache

.PHONY: bench-cluster
bench-cluster: venv binaries ## benchmark: wall time and CPU-s of a no-op rerun of cluster.yml + remediate.yml
	$(PY) tests/bench/cluster_rerun.py
