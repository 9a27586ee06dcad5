# nnsweep — every target sets up .venv on first use (python3 -m venv + pip install), always with
# the exact versions in constraints.txt. The sweep targets install the package alone; test and
# lint add the dev extra (pytest, ruff, selenium, psycopg); bench adds the bench extra.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# setuptools' editable install warns about folders named like the package in the working
# directory (there are none here) in a framed block on every install: filtered by its text
PIP    := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -c constraints.txt
RUN    := $(VENV)/.stamp-run
DEV    := $(VENV)/.stamp-dev
BENCH  := $(VENV)/.stamp-bench
PYTEST_ARGS ?=
# pytest-xdist: one worker process per usable core (tests/conftest.py counts them), or
# `make test PYTEST_WORKERS=0` for no workers; each test file runs whole on one worker, so the
# sweep a module fixture runs is shared by the file's tests
PYTEST_WORKERS ?= auto
XDIST   = -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: install sweep test test-fast lint ui export report bench lock clean reset help

help:
	@echo "make sweep   set up .venv and run sweeps/quickstart.yaml (logs to mlflow.db)"
	@echo "make test    set up .venv and run the whole test suite, on every core (PYTEST_WORKERS=N)"
	@echo "make test-fast  the tests that train no Keras model (-m 'not slow'), for the edit loop"
	@echo "make ui      open the MLflow UI on mlflow.db (http://127.0.0.1:5000)"
	@echo "make export  export the quickstart study's best model to exports/quickstart/"
	@echo "make report  write the quickstart study's report to reports/quickstart/"
	@echo "make bench   run the benchmark scripts in bench/ (slow)"
	@echo "make lint    ruff check + format, the layer contract (import-linter), mypy"
	@echo "make lock    re-resolve the newest versions pyproject.toml allows into constraints.txt"
	@echo "make clean   remove .venv and caches;  make reset  also removes mlflow.db, optuna.db, mlruns/"

$(RUN): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

$(DEV): $(RUN)
	$(PIP) -e '.[dev]'
	touch $@

$(BENCH): $(RUN)
	$(PIP) -e '.[bench]'
	touch $@

install: $(RUN)

sweep: $(RUN)
	$(BIN)/nnsweep run sweeps/quickstart.yaml

test: $(DEV)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(DEV)
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: $(DEV)
	$(BIN)/ruff check nnsweep tests bench
	$(BIN)/ruff format --check nnsweep tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy nnsweep

ui: $(RUN)
	$(BIN)/nnsweep ui

export: $(RUN)
	$(BIN)/nnsweep export quickstart --out exports/quickstart --force

report: $(RUN)
	$(BIN)/nnsweep report quickstart --out reports/quickstart

bench: $(BENCH)
	$(BIN)/python bench/run_all.py

# Newest versions the ranges in pyproject.toml allow (dev and bench extras too), then pinned.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev,bench]'
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^#'; } \
	  > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(RUN) $(DEV) $(BENCH)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

reset:
	rm -rf mlflow.db optuna.db optuna.log mlruns mlartifacts exports reports
