# Thin wrappers: Snakemake knows the pipeline, pytest the checks. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml
JOBS ?= 2
NAME = $(shell sed -n 's/^name: *//p' $(CONFIG))

.PHONY: venv test book results html benchmark gpu lab publish student lint clean

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

# The GPU path in one command (benchmarks/gpu.sh): the device tests, thesis-smoke through every chapter on CUDA and
# its book, the 224 px CUDA benchmark; everything it measured under OUT (default _build/gpu).
gpu:
	bash benchmarks/gpu.sh

# JupyterLab on this folder. jupytext's server extension (enabled in .venv) reads notebooks/*.py as notebooks and
# saves them back as percent scripts (its first save stamps the jupytext version in the header); the setting that
# opens a script as a notebook on a double click goes to _build/lab, not to your home folder. LAB_ARGS adds
# options, e.g. LAB_ARGS="--port=8899 --no-browser" (and --allow-root as root, in a container).
LAB_SETTINGS = $(abspath _build/lab)
lab: venv  ## JupyterLab: the chapters in notebooks/ open as notebooks and save back as .py scripts
	$(BIN)/jupytext-config --settings-file $(LAB_SETTINGS)/labconfig/default_setting_overrides.json \
	  set-default-viewer python >/dev/null
	JUPYTER_CONFIG_PATH=$(LAB_SETTINGS)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} $(BIN)/jupyter-lab \
	  --ServerApp.root_dir=$(CURDIR) --ContentsManager.preferred_dir=notebooks $(LAB_ARGS)

# The built book to the gh-pages branch of REMOTE (a URL or a path), as Jupyter Book publishes: ghp-import with a
# .nojekyll file, force-pushed, so the branch holds exactly the last build. A local gh-pages branch records it.
publish: venv  ## push _build/html to the gh-pages branch of REMOTE: make publish REMOTE=<url or path>
	@test -n "$(REMOTE)" || { echo "make publish needs the repository to publish to:" \
	  "make publish REMOTE=<url or path>, e.g. REMOTE=git@github.com:you/camfaith.git" >&2; exit 2; }
	@test -f _build/html/index.html || { echo "no book in _build/html: build it first (make book)," \
	  "then run make publish REMOTE=$(REMOTE) again" >&2; exit 2; }
	$(BIN)/ghp-import --no-jekyll --push --force --remote "$(REMOTE)" --branch gh-pages \
	  --message "The camfaith book, built from $$(git rev-parse --short HEAD 2>/dev/null || echo 'an uncommitted tree')" \
	  _build/html
	@echo "Published _build/html to the gh-pages branch of $(REMOTE)"

# Student copies (nbgrader generate_assignment): the notebooks with exercises, solution code replaced by
# `raise NotImplementedError()`, prose solutions by answer cells, autograder checks kept; plus a zip of them.
student: venv  ## student copies of the notebooks with exercises, in _build/student (and camfaith.zip)
	$(BIN)/python -m camfaith.student --out _build/student

lint: venv
	$(BIN)/ruff check src tests benchmarks notebooks

clean:
	rm -rf _build book/generated results .snakemake
