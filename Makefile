# Every target creates .venv from pyproject.toml when it is missing.  The
# versions installed are the exact ones of constraints.txt (also for the build
# backend: pip passes PIP_CONSTRAINT on to its isolated build environment).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
VERIFY_JSON := build/verify.json
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: setup verify verify-json test proofs crosshair check report bench lint mutate sweep

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q pip setuptools
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

verify: $(STAMP)
	$(BIN)/pagemap verify

# Two pytest workers (pytest-xdist), one test file each at a time: module fixtures run once.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

proofs: $(STAMP)
	$(BIN)/python -m proofs

crosshair: $(STAMP)
	$(BIN)/python -m proofs.crosshair_checks

check: $(STAMP)
	$(BIN)/pagemap verify --only scenario

# The verification behind the report takes minutes: `make verify-json` runs it
# and keeps its result; `make report` reuses that result (and says how old it
# is); `make report FRESH=1` runs the verification first.
verify-json: $(STAMP)
	mkdir -p $(dir $(VERIFY_JSON))
	$(BIN)/pagemap verify --json > $(VERIFY_JSON).tmp; rc=$$?; \
	  mv $(VERIFY_JSON).tmp $(VERIFY_JSON); echo "wrote $(VERIFY_JSON)"; exit $$rc

report: $(STAMP)
ifneq ($(FRESH),)
	-$(MAKE) --no-print-directory verify-json
endif
	@test -f $(VERIFY_JSON) || { echo "make report: no $(VERIFY_JSON) yet; run 'make verify-json'" \
	  "(the whole verification, about 11 minutes) or 'make report FRESH=1'"; exit 2; }
	$(BIN)/pagemap report --from-json $(VERIFY_JSON)

# Mutation testing with cosmic-ray (not part of `make test`): by default the seeded sample
# of 30 mutants per protocol module (about an hour on 2 shared cores); MUTATE_ARGS= for
# the whole set (hours), --modules fileio for one module, --rerun after a new check.
MUTATE_ARGS ?= --limit 30 --seed 1
mutate: $(STAMP)
	nice -n 10 $(BIN)/python tools/mutate.py $(MUTATE_ARGS)

# The default sweep on seed (every finding rediscovered, alone, with its fix)
# and on fixed (nothing found, scope complete), and the skips' soundness on a
# small scope; the findings' scenario files go to build/sweep/VARIANT/.
sweep: $(STAMP)
	$(BIN)/python -m pytest -m sweep -s tests/test_sweep_default.py

# `make bench COMPILED=1`: the same source, with the search's hot modules compiled
# by mypyc (part of the pinned mypy) in a copy under build/mypyc (spec/bench.md).
# The copy's package path does not lead to scenarios/, so the files are named.
MYPYC_DIR := build/mypyc
MYPYC_MODULES := machine checker/store checker/invariants checker/explore
$(MYPYC_DIR)/.built: $(STAMP) $(wildcard model/pagemap/*.py model/pagemap/checker/*.py)
	rm -rf $(MYPYC_DIR) && mkdir -p $(MYPYC_DIR) && cp -r model/pagemap $(MYPYC_DIR)/
	find $(MYPYC_DIR) -name __pycache__ -prune -exec rm -rf {} +
	cd $(MYPYC_DIR) && nice -n 10 $(CURDIR)/$(BIN)/mypyc $(MYPYC_MODULES:%=pagemap/%.py) \
	  > build.log 2>&1 || { tail -20 build.log; exit 1; }
	touch $@

bench: $(STAMP) $(if $(COMPILED),$(MYPYC_DIR)/.built)
	$(if $(COMPILED),PYTHONPATH=$(CURDIR)/$(MYPYC_DIR)) nice -n 10 $(BIN)/python \
	  -m pagemap.checker.bench $(if $(COMPILED),$(if $(filter %.toml,$(BENCH_ARGS)),,$(sort \
	  $(wildcard scenarios/bench/*.toml)))) $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check model proofs tests tools
	$(BIN)/mypy model/pagemap
