# Every target bootstraps .venv itself (python3 -m venv + pip install -e ".[dev]").
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= standard
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Data: $MEDLIB_DATA if set, else ../shared/datasets when it exists, else <repo>/datasets.
ifeq ($(MEDLIB_DATA),)
ifneq ($(wildcard ../shared/datasets/medmnist),)
export MEDLIB_DATA := $(abspath ../shared/datasets)
endif
endif

# OpenMP threads wait passively instead of spinning: on a busy or shared CPU spinning threads
# slowed PyTorch several-fold (measured on the 2-core CI machine). Kernels inherit it.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup run test lint unit nbval ui-browser ui-test bench lab clean-runs help

help:
	@echo "make run    execute every chapter with papermill (PROFILE=$(PROFILE)) into runs/"
	@echo "make test   lint + unit tests + every notebook under nbval in the smoke profile"
	@echo "make ui-test  every chapter in JupyterLab + headless Chromium: no errors, widgets render and respond (build/ui/)"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make bench  run and record the benchmarks in bench/ (about 2 hours), then check the targets"
	@echo "data: MEDLIB_DATA=$(MEDLIB_DATA)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	MEDLIB_PROFILE=$(PROFILE) $(BIN)/medlib run all --profile $(PROFILE) --quiet
	@echo "results are in $(abspath runs)/<chapter>/<run-id>/ (results.json, executed notebook, figures)"
	@$(BIN)/medlib leaderboard

lint: $(STAMP)
	$(BIN)/ruff check medlib tests notebooks $(wildcard bench)

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

nbval: $(STAMP)
	MEDLIB_PROFILE=smoke MEDLIB_HEADLESS=1 MEDLIB_RUNS=$(abspath build)/nbval-runs \
	  $(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks -q -p no:cacheprovider

test: lint unit nbval

# Real-browser test (tests/ui/ui_test.py): JupyterLab on a free localhost port, Playwright driving
# Debian's chromium (never `playwright install`); smoke profile, live widgets; build/ui/<chapter>.png.
# `make ui-browser` alone only makes sure the browser is there (CI uses it to tell "cannot test here" from a failure).
CHROMIUM ?= /usr/bin/chromium
ui-browser: $(STAMP)
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install -qq -e ".[dev,ui]"
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$(CHROMIUM)" != /usr/bin/chromium ]; then echo "ui-test: no Chromium at $(CHROMIUM)" >&2; exit 1; fi; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if ! command -v apt-get >/dev/null || [ "$$SUDO" = none ]; then \
	    echo "ui-test: needs Chromium at /usr/bin/chromium and cannot install it here (no apt-get, or not root and no passwordless sudo)." >&2; \
	    echo "         Run 'sudo apt-get install -y chromium' (Debian), or pass CHROMIUM=/path/to/chromium." >&2; exit 1; \
	  fi; \
	  echo "ui-test: installing Debian's chromium (apt-get install -y chromium) ..."; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	    || { echo "ui-test: 'apt-get install -y chromium' failed; install it by hand or pass CHROMIUM=/path/to/chromium" >&2; exit 1; }; \
	fi

ui-test: ui-browser
	MEDLIB_UI_CHROMIUM=$(CHROMIUM) $(BIN)/python tests/ui/ui_test.py

# The recorded benchmarks (about 2 hours on 2 CPU cores; timings mean something only on an idle machine).
# Existing chapter records are kept by record_runs.py: delete one to measure it again.
bench: $(STAMP)
	$(BIN)/python bench/record_runs.py
	$(BIN)/python bench/time_to_baseline.py --threads 1
	$(BIN)/python bench/data_pipeline.py --threads 1 --repeats 5
	$(BIN)/python bench/seg_speed.py
	$(BIN)/python bench/report.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-runs:
	@echo "runs/ holds your results; remove it by hand if you really mean it: rm -r runs"
