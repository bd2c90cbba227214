# The two commands: `make serve` and `make test`. Each sets up everything it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
PORT ?= 5006

.PHONY: serve test lint bench chromium env clean

$(STAMP): pyproject.toml $(PLUGINS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" $(foreach p,$(PLUGINS),-e $(dir $(p)))
	# compile UMAP's numba kernels into ~/.cache/typed-panels/numba once, as an install should
	$(VENV)/bin/panels warm-up || echo "UMAP warm-up failed: the first UMAP compiles instead"
	touch $(STAMP)

env: $(STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

serve: $(STAMP)
	$(VENV)/bin/panels serve --demo --port $(PORT)

test: $(STAMP) chromium
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache build dist
