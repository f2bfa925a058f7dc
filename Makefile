# dataflywheel.blueprint: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
BIN         := $(VENV)/bin
PYTHON      ?= python3
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

.collections/ansible_collections/dataflywheel/blueprint:
	mkdir -p .collections/ansible_collections/dataflywheel
	ln -sfn ../../.. $@

.PHONY: venv
venv: $(VENV)/.installed .collections/ansible_collections/dataflywheel/blueprint ## Python env with ansible, molecule, linters
