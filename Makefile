# Thin wrappers: Snakemake knows the pipeline, pytest the checks. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml
JOBS ?= 2
NAME = $(shell sed -n 's/^name: *//p' $(CONFIG))

.PHONY: venv test book results html benchmark lint clean

venv: $(VENV)/.installed

# Create the virtual environment if there is none, install the pinned stack and the package.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch, torchvision, pytorch_grad_cam, jupyter_book, snakemake, papermill"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

test: venv  ## the test suite (CI runs exactly this)
	$(BIN)/python -m pytest

book: results html  ## the main job: run the study of CONFIG, then build the book into _build/html

results: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --configfile $(CONFIG) --cores $(JOBS) --quiet all

# Always the whole book (see camfaith.pipeline.build_book): no page keeps numbers of another configuration.
html: venv
	$(BIN)/python -m camfaith.pipeline book results/$(NAME)/notebooks

benchmark: venv
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt 2>&1 | grep -v "is ignored" || true
	$(BIN)/python benchmarks/run.py

lint: venv
	$(BIN)/ruff check src tests benchmarks notebooks

clean:
	rm -rf _build book/generated results .snakemake
