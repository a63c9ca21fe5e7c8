# Every target creates .venv from pyproject.toml when it is missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup verify test proofs crosshair check report bench lint mutate

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

# Mutation testing with cosmic-ray (about an hour on 2 cores; not part of `make test`).
# MUTATE_ARGS: e.g. --modules fileio or --limit 40 for a sample.
mutate: $(STAMP)
	nice -n 10 $(BIN)/python tools/mutate.py $(MUTATE_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pagemap.checker.bench

lint: $(STAMP)
	$(BIN)/ruff check model proofs tests tools
	$(BIN)/mypy model/pagemap
