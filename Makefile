# Every target creates .venv from pyproject.toml when it is missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup verify test proofs crosshair check report bench lint sweep

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

verify: $(STAMP)
	$(BIN)/pagemap verify

test: $(STAMP)
	$(BIN)/python -m pytest

proofs: $(STAMP)
	$(BIN)/python -m proofs

crosshair: $(STAMP)
	$(BIN)/python -m proofs.crosshair_checks

check: $(STAMP)
	$(BIN)/pagemap verify --only scenario

report: $(STAMP)
	$(BIN)/pagemap report

# The default sweep on seed (every finding rediscovered, alone, with its fix)
# and on fixed (nothing found, scope complete), and the skips' soundness on a
# small scope; the findings' scenario files go to build/sweep/VARIANT/.
sweep: $(STAMP)
	$(BIN)/python -m pytest -m sweep -s tests/test_sweep_default.py

bench: $(STAMP)
	$(BIN)/python -m pagemap.checker.bench

lint: $(STAMP)
	$(BIN)/ruff check model proofs tests
	$(BIN)/mypy model/pagemap
