# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast soak lint contracts check-contracts bench demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Faults at random under load for SOAK_MINUTES (make test runs 2 minutes of it);
# SOAK_SEED=N repeats a run's choices. tests/soak/soak.py says what is checked.
SOAK_MINUTES ?= 20
soak: $(STAMP)
	SOAK_MINUTES=$(SOAK_MINUTES) $(PY) -m pytest -q -s -p no:cacheprovider tests/soak

lint: $(STAMP)
	$(VENV)/bin/ruff check quorum_node tx_manager quorum_shared tests bench
	$(VENV)/bin/ruff format --check quorum_node tx_manager quorum_shared tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# solc comes from npm, pinned in contracts/package.json; artifacts are committed.
contracts:
	cd contracts && npm ci --silent && node compile.js

bench: $(STAMP)
	$(PY) -m bench.run_all

demo: $(STAMP)
	$(PY) -m quorum_node.demo $(if $(KEEP),--keep,)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
