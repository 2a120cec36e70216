# make run: create .venv, install, migrate, serve on 127.0.0.1:8080 (SQLite under ./var/
#           unless PADDLES_DATABASE_URL is set).
# make test: install with test extras, run the whole suite on SQLite and PostgreSQL.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test install migrate bench bench-ab clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
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

test: install
	$(BIN)/python -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV) var .pytest_cache

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A/B: main (or AB_ARGS="--a-ref REV") against the working tree, interleaved in one run
bench-ab: install
	$(BIN)/python bench/ab.py $(AB_ARGS)
