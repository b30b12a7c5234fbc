# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# CPython 3.12 where the machine has it (deploy/find-python.sh says why), else python3.
ifndef PYTHON
PYTHON := $(shell sh deploy/find-python.sh)
endif
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= ./data
# `make run PORT=13001 HOST=0.0.0.0`, `make demo PORT=13001`: passed on only when given.
SERVE_FLAGS = $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST))

.PHONY: install run demo test bench lint soak mutation

$(BIN)/larkfleet: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "larkfleet needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/larkfleet

run: install
	$(BIN)/larkfleet serve --data-dir $(DATA_DIR) $(SERVE_FLAGS)

demo: install
	$(BIN)/larkfleet demo $(if $(PORT),--port $(PORT))

# Test files run in one process more than the machine has cores (pytest-xdist, one file per
# process at a time, so a file's shared service starts once): much of the suite waits on
# timers (heartbeat timeouts, backoff, leases), and that waiting overlaps.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
# Bytecode of the project's own modules is written once here: where the environment sets
# PYTHONDONTWRITEBYTECODE, each of the suite's hundreds of processes compiled them again.
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m compileall -q -j 0 api bench shared simulator store supervisor tests worker
	sh tests/browser/ensure-chromium.sh
	sh tests/postgres/ensure-postgresql.sh
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: install  ## writes build/benchmarks.md; docs/benchmarks.md only with --out, on purpose
	$(BIN)/python -m bench

DURATION ?= 600
soak: install
	$(BIN)/python -m tests.soak --duration $(DURATION) $(if $(SEED),--seed $(SEED))

lint: install
	$(BIN)/ruff check .

# Mutation testing of the modules that hold the README's promises (tests/mutation.py, docs/testing.md).
mutation: install
	$(BIN)/pip install --quiet -e '.[dev,mutation]'
	$(BIN)/python -m tests.mutation
