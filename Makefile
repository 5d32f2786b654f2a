# The two commands: `make lab` and `make test`. Both build .venv from scratch when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aistudio-installed
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=
# test files spread over workers whole (--dist loadfile), so module-scoped servers start once
PYTEST_WORKERS ?= 2

.PHONY: lab test venv clean labextension

LABEXT_LINK := $(VENV)/share/jupyter/labextensions/aistudio-jupyter

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch pinned so a CPU machine never pulls a multi-GB CUDA build; skipped when present
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# the editable install copies the sidebar's build into the venv; a link sees every rebuild
	if [ -f aistudio_jupyter/labextension/package.json ]; then rm -rf $(LABEXT_LINK) && ln -s $(CURDIR)/aistudio_jupyter/labextension $(LABEXT_LINK); fi
	touch $(STAMP)

# The JupyterLab sidebar (labextension/): with Node, rebuilt in development mode and linked into
# the venv, so reloading Lab shows a change; without Node, Lab runs with whatever build is there.

labextension: venv
	@if command -v npm >/dev/null 2>&1; then \
	  (cd labextension && { test -f node_modules/.package-lock.json || npm ci --no-audit --no-fund; } && npm run build) && \
	  mkdir -p $(dir $(LABEXT_LINK)) && rm -rf $(LABEXT_LINK) && ln -s $(CURDIR)/aistudio_jupyter/labextension $(LABEXT_LINK); \
	else echo "npm not found: the AI Studio sidebar is not rebuilt"; fi

lab: venv labextension
	$(BIN)/jupyter lab $(LAB_ARGS)

test: venv
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
