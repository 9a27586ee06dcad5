# nnsweep — every target sets up .venv on first use (python3 -m venv + pip install -e .[dev]).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install sweep test test-fast lint ui export report bench clean reset help

help:
	@echo "make sweep   set up .venv and run sweeps/quickstart.yaml (logs to mlflow.db)"
	@echo "make test    set up .venv and run the whole test suite"
	@echo "make test-fast  the tests that train no Keras model (-m 'not slow'), for the edit loop"
	@echo "make ui      open the MLflow UI on mlflow.db (http://127.0.0.1:5000)"
	@echo "make export  export the quickstart study's best model to exports/quickstart/"
	@echo "make report  write the quickstart study's report to reports/quickstart/"
	@echo "make bench   run the benchmark scripts in bench/ (slow)"
	@echo "make lint    ruff check + ruff format --check"
	@echo "make clean   remove .venv and caches;  make reset  also removes mlflow.db, optuna.db, mlruns/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

sweep: $(STAMP)
	$(BIN)/nnsweep run sweeps/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check nnsweep tests bench
	$(BIN)/ruff format --check nnsweep tests bench

ui: $(STAMP)
	$(BIN)/nnsweep ui

export: $(STAMP)
	$(BIN)/nnsweep export quickstart --out exports/quickstart --force

report: $(STAMP)
	$(BIN)/nnsweep report quickstart --out reports/quickstart

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

reset:
	rm -rf mlflow.db optuna.db optuna.log mlruns mlartifacts exports reports
