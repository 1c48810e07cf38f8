# The two commands of the README: `make repro` (main pipeline) and `make test` (unit tests + notebooks).
# Both create .venv with the pinned environment first; nothing else needs to be installed but Python 3.11.
# `make test` lints (ruff) before it runs pytest; `make lint` lints alone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?=
# processes per stage: NPROC > 1 runs every stage's trainers data-parallel under torchrun (one GPU each; flowlib.launch)
NPROC  ?= 1
# when this make started, and whether .venv was missing then: `make repro` on a fresh clone (install included) writes
# its own wall time into README.md
START  := $(shell date +%s)
FRESH  := $(shell [ -f $(STAMP) ] || echo 1)
# extra arguments for `make lab`, e.g. LAB_ARGS='--port=8890 --no-browser'
LAB_ARGS ?=

.PHONY: repro test test-profiles test-browser lint install lab bench your-flow diffusers clean-venv fashion-data

repro: $(STAMP)
ifneq ($(PROFILE),)
	$(BIN)/python -m flowlib.config use $(PROFILE)
endif
ifneq ($(filter fashion fashion-gpu,$(PROFILE)),)
	$(MAKE) --no-print-directory fashion-data
endif
	mkdir -p data  # tracked by data.dvc: empty in the default profile, CIFAR-10 + Inception for cifar10
	[ -n "$$(ls -A data)" ] || $(BIN)/dvc commit --force --quiet data.dvc  # the empty folder's entry in the cache: `dvc status` stays clean
	PATH="$(abspath $(BIN)):$$PATH" FLOWLIB_NPROC=$(NPROC) $(BIN)/dvc repro
ifeq ($(PROFILE),)
	$(BIN)/python -m flowlib.report readme
ifneq ($(FRESH),)
	$(BIN)/python -m flowlib.report timing --seconds $$(( $$(date +%s) - $(START) )) --fresh
endif
else
	$(BIN)/python -m flowlib.report profile $(PROFILE)  # the run's report -> reports/$(PROFILE)/, its block in README.md
ifneq ($(FRESH),)
	$(BIN)/python -m flowlib.report timing --profile $(PROFILE) --seconds $$(( $$(date +%s) - $(START) )) --fresh
endif
endif

test: lint
	$(BIN)/python -m pytest

# The minutes-long end-to-end runs, marked profile_smoke and left out of `make test` to keep it within five minutes on 2
# cores: the fashion and cifar10 pipelines at smoke sizes (every stage notebook under papermill on small files made in the
# test) and the README's `make your-flow` on a clean clone. CI (.ci/run) runs them after `make test`.
test-profiles: $(STAMP)
	$(BIN)/python -m pytest -m profile_smoke tests

# JupyterLab in headless Chromium runs every notebook a reader opens (01b, 04, 06, 07, 08, explore) and checks figures,
# widgets, errors and the explorer's controls (tests_browser/). CI (.ci/run) runs it after `make test`.
# Installs Debian's chromium (apt-get, as root) and Playwright's Python package; screenshots in reports/screenshots/.
test-browser: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,browser]'
	$(BIN)/python -m pytest tests_browser

# Fashion-MNIST's four IDX files: data/fashion-mnist/, else Debian's package (installed here when missing and root may
# apt-get, as test-browser installs Chromium); otherwise `python -m flowlib.data check` says how to provide them (exit 2).
fashion-data: $(STAMP)
	@$(BIN)/python -m flowlib.data check fashion >/dev/null 2>&1 || { [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { echo "installing Debian's dataset-fashion-mnist (about 30 MB)"; apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; }
	$(BIN)/python -m flowlib.data check fashion

lint: $(STAMP)
	$(BIN)/ruff check .

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"flowlib needs Python 3.11, found {sys.version.split()[0]}; set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

lab: $(STAMP)  # repository settings (.jupyter/lab/user-settings): no news pop-up on first open; runs as root too (containers)
	JUPYTERLAB_SETTINGS_DIR="$(abspath .jupyter/lab/user-settings)" $(BIN)/jupyter lab notebooks/ \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# notebooks/07_your_flow.ipynb (every method on any velocity field) under papermill; brings up the digits teacher it
# needs first (`dvc repro teacher@digits`: cached after `make repro`, about a minute on a clean clone)
your-flow: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro teacher@digits
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/papermill notebooks/07_your_flow.ipynb reports/notebooks/07_your_flow.ipynb --cwd notebooks

# notebooks/08_diffusers.ipynb (flowlib <-> diffusers on the exact flow and a tiny random SD3 transformer) under papermill
diffusers: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/papermill notebooks/08_diffusers.ipynb reports/notebooks/08_diffusers.ipynb --cwd notebooks

bench: $(STAMP)
	$(BIN)/python bench/bench_solvers.py
	$(BIN)/python bench/bench_flowturbo.py
	$(BIN)/python bench/bench_checks.py
	$(BIN)/python bench/bench_samplers.py

clean-venv:
	rm -rf $(VENV)
