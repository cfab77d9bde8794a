# Two entry points that work on a fresh machine (Python 3.11 + pip):
#   make demo   builds the synthetic demo corpus into ./corpus
#   make test   runs the test suite
# Each creates ./.venv from this repo's files first.
VENV ?= .venv
PY := $(VENV)/bin/python
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 DO_NOT_TRACK=1 \
	PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120

.PHONY: demo test lint install install-all mutate clean

$(VENV)/.core: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# torch is pinned so that the train extra's `torch>=2.4` pulls no newer multi-GB build. It is
# installed in the same pip command as the extras: pip then resolves torch's `setuptools>=77.0.3`
# together with neurokit2's `setuptools<82` (a separate `pip install torch` upgrades setuptools
# past 82 and pip prints "ERROR: ... neurokit2 requires setuptools<82").
$(VENV)/.all: $(VENV)/.core
	$(PY) -m pip install -q torch==2.13.0 -e ".[train,flows,dev]"
	@# WordNet 3.0 for meit-eval --metrics meit (NLTK METEOR); Debian's package, needs root
	test -f /usr/share/wordnet/data.noun || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base) || \
		echo "WordNet missing: run 'apt-get install wordnet-base' as root for --metrics meit"
	touch $@

install: $(VENV)/.core
install-all: $(VENV)/.all

demo: $(VENV)/.core
	$(OFFLINE) $(VENV)/bin/meit-corpus build

# Two test processes (pytest-xdist): 3:14 instead of 3:54 on 2 idle cores (TEST_JOBS=0: one).
TEST_JOBS ?= 2
test: $(VENV)/.all lint
	$(OFFLINE) $(VENV)/bin/pytest -q -n $(TEST_JOBS)

lint: $(VENV)/.all
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python .ci/imports.py

# Mutation testing of the core modules, group by group (.ci/mutation.toml; slow, not part of
# `make test`). Scores per module: mutation-scores.json
mutate: $(VENV)/.all
	bash .ci/mutate

clean:
	rm -rf $(VENV) corpus demo-data
