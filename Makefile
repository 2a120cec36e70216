# make run: create .venv, install, migrate, serve on 127.0.0.1:8080 (SQLite under ./var/
#           unless PADDLES_DATABASE_URL is set).
# make test: install with test extras, `make lint`, then the whole suite on SQLite and PostgreSQL.
# make lint: ruff check and mypy, as pyproject.toml configures them (README.md, "Checks").
# make test-newest: the suite on the newest Python the dependencies support (CI runs both).
# Any python3 of at least MIN_PYTHON (setup.py's python_requires); PYTHON=python3.13 picks one.
PYTHON     ?= python3
MIN_PYTHON  = 3.11
VENV       ?= .venv
BIN         = $(VENV)/bin
STAMP       = $(VENV)/.installed
# the newest Python found: python3.13, then python3.12, on PATH or under pyenv
NEWEST_PYTHON ?= $(shell for v in 3.13 3.12; do \
	for p in python$$v $$(ls -d $$HOME/.pyenv/versions/$$v*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); do \
	$$p -c '' 2>/dev/null && { command -v $$p; exit 0; }; done; done)
NEWEST_VENV ?= .venv-newest
# on the newest Python: every test but the generated ones (fuzz, property), the fault
# injection, the teuthology client's and the two-instance deployment's, which exercise
# paddles' logic, PostgreSQL, nginx and the client rather than the interpreter: ~60% of the
# suite's time (`make test` runs them all)
NEWEST_TESTS ?= tests --ignore=tests/faults --ignore=tests/integration --ignore=tests/scaleout \
	--ignore=tests/api/test_fuzz.py --ignore=tests/unit/test_properties.py

.PHONY: run test lint test-newest install migrate bench bench-ab clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "paddles needs Python $(MIN_PYTHON) or newer: '$(PYTHON)' is not found (make PYTHON=/path/to/python3.X)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < tuple(map(int, "$(MIN_PYTHON)".split("."))))' 2>/dev/null || { echo "paddles needs Python $(MIN_PYTHON) or newer: '$(PYTHON)' is $$($(PYTHON) --version 2>/dev/null || echo 'not runnable') (make PYTHON=python3.X)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python setup.py constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/paddles migrate

run: install
	$(BIN)/paddles serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest -q -n 2 tests

test-newest:
	@test -n "$(NEWEST_PYTHON)" || { echo "no python3.13 or python3.12 found (make test-newest NEWEST_PYTHON=/path/to/python3.X)" >&2; exit 1; }
	$(MAKE) --no-print-directory install PYTHON=$(NEWEST_PYTHON) VENV=$(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -c 'import sys; print("tests on Python", sys.version.split()[0])'
	$(NEWEST_VENV)/bin/python -m pytest -q -n 2 -p no:cacheprovider $(NEWEST_TESTS)

clean:
	rm -rf $(VENV) $(NEWEST_VENV) var .pytest_cache

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A/B: main (or AB_ARGS="--a-ref REV") against the working tree, interleaved in one run
bench-ab: install
	$(BIN)/python bench/ab.py $(AB_ARGS)
