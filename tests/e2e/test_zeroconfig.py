"""Zero-config end to end: ``nnsweep run DATA.csv --target COL``, a sweep file with only ``name``
and ``dataset``, a space with nothing to sample, ``dataset.test_path``, and every bad
``validation``/``test_path``/``--target`` entry refused before anything is written.

Real Keras training on iris and wine (sklearn's bundled tables written as CSV/Parquet/NPZ),
a real SQLite Optuna storage and a real SQLite MLflow store in ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nnsweep.names import SPEC_ATTR
from tests.conftest import CliResult, Stores

SPACE_NOTE = "default space for "
BUDGET_NOTE = "budget: "
FIXED_NOTE = "every entry is fixed"


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """iris and wine as users' files: CSV, Parquet, NPZ, and a wine train/test pair."""
    from sklearn.datasets import load_iris, load_wine

    folder = tmp_path_factory.mktemp("tables")
    iris = load_iris(as_frame=True).frame
    iris["species"] = iris.pop("target").map({0: "setosa", 1: "versicolor", 2: "virginica"})
    iris.to_csv(folder / "iris.csv", index=False)
    iris.to_parquet(folder / "iris.parquet")
    np.savez(
        folder / "iris.npz",
        x=iris.drop(columns="species").to_numpy(),
        y=iris["species"].to_numpy().astype(str),
    )
    # 3 rows of virginica (2 once the test split is drawn): too few for 5 stratified folds
    rare = iris.iloc[[*range(0, 40), *range(50, 90), 100, 101, 102]]
    rare.to_csv(folder / "rare.csv", index=False)
    # 14 rows of a regression: too few for 15 folds
    iris.iloc[:14].drop(columns="species").to_csv(folder / "few.csv", index=False)

    wine = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    shuffled = wine.sample(frac=1.0, random_state=0).reset_index(drop=True)
    shuffled.iloc[:138].to_csv(folder / "wine_train.csv", index=False)
    shuffled.iloc[138:].to_csv(folder / "wine_test.csv", index=False)  # 40 rows
    shuffled.iloc[138:].drop(columns="alcohol").to_csv(folder / "wine_other.csv", index=False)
    shuffled.iloc[138:].drop(columns="cultivar").to_csv(folder / "wine_notarget.csv", index=False)
    return {p.name: p for p in folder.iterdir()}


def _write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _study(stores: Stores, name: str) -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=stores.storage)


def _complete(study: Any) -> list[Any]:
    return [t for t in study.trials if t.state.name == "COMPLETE"]


def _mlflow(stores: Stores, experiment: str) -> tuple[Any, Any, list[Any]]:
    """(client, the study's parent run, its trial runs)."""
    from mlflow import MlflowClient

    client = MlflowClient(stores.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("nnsweep.role") == "study"]
    assert len(parents) == 1
    return client, parents[0], [r for r in runs if r.data.tags.get("nnsweep.role") == "trial"]


def _space_of_data(path: Path, target: str | None) -> dict[str, Any]:
    """``default_space`` for this data as the run sizes it (fold size under cross-validation)."""
    from nnsweep.data.load import sweep_dataset
    from nnsweep.spec.defaults import data_file_spec, default_space

    data = sweep_dataset(data_file_spec(path, target))
    n = data.sizes["train"]
    if data.folds:
        n = n * (data.folds - 1) // data.folds
    return default_space(data.task.kind, n, data.input_width, table=data.schema is not None)


def _assert_sampled(params: dict[str, Any], space: dict[str, Any]) -> None:
    """Every dimension ``space`` searches (a range or a list) was sampled into ``params``:
    ``units`` as ``units_0``, ``units_1``, ... within its range."""
    for key, value in space.items():
        if not isinstance(value, (dict, list)):
            continue  # fixed: not a sampled parameter
        if key == "units":
            widths = [v for k, v in params.items() if k.startswith("units_")]
            assert widths and all(value["low"] <= w <= value["high"] for w in widths), params
        elif isinstance(value, dict):
            assert value["low"] <= params[key] <= value["high"], (key, params)
        else:
            assert params[key] in value, (key, params)


# -- 1. nnsweep run DATA --target COL -----------------------------------------------------------
@pytest.mark.slow
def test_a_csv_with_target_runs_a_real_sweep_and_its_resolved_file_resumes_it(
    tables: dict[str, Path], stores: Stores, cli: Callable[..., CliResult]
) -> None:
    from nnsweep.spec.config import SpaceSpec, load_spec, parse_spec

    saved = stores.root / "resolved.yaml"
    data = tables["iris.csv"]
    result = cli(
        "run", data, "--target", "species", "--trials", "1", "--jobs", "1", "-q",
        "--save-resolved", saved, *stores.args,
    )  # fmt: skip
    assert result.code == 0, result.err
    printed = result.out + result.err
    assert printed.count(SPACE_NOTE) == 1, printed  # the space it chose, printed once
    assert "validation: 5-fold cross-validation" in printed  # auto: folds on a small table
    assert BUDGET_NOTE not in printed  # --trials satisfies the budget rule

    study = _study(stores, "iris")  # named after the file's stem
    assert len(_complete(study)) == 1
    expected = _space_of_data(data, "species")
    for trial in _complete(study):
        _assert_sampled(trial.params, expected)
    client, parent, trials = _mlflow(stores, "iris")
    assert len(trials) == 1

    logged = client.download_artifacts(parent.info.run_id, "sweep.yaml", str(stores.root))
    logged_spec = parse_spec(Path(logged).read_text(encoding="utf-8"), "sweep.yaml")
    assert logged_spec.model_dump() == load_spec(saved).model_dump()  # the same resolved spec
    written = yaml.safe_load(saved.read_text(encoding="utf-8"))
    assert written["name"] == "iris" and written["trials"] == 1
    assert load_spec(saved).space == SpaceSpec.model_validate(expected)  # the default space
    assert written["dataset"]["validation"] == {"folds": 5}  # auto, as it resolved

    # the saved file resumes this study: its spec compares equal to the one the study stored
    # (a second CV trial would double the test's time, so it asks for no more trials)
    again = cli("run", saved, "--jobs", "1", "-q", *stores.args)
    assert again.code == 0, again.err
    assert SPACE_NOTE not in again.out + again.err  # the file names its space now
    assert "study iris already has its target of 1 trials" in again.out, again.out
    resumed = _study(stores, "iris")
    assert len(_complete(resumed)) == 1
    # the second plain MLP of start_with waits, as Optuna keeps an enqueued trial, for more
    waiting = [t for t in resumed.trials if t.state.name == "WAITING"]
    assert len(resumed.trials) == 2 and len(waiting) == 1, resumed.trials
    # ... and is checked as such: another seed (other folds) is not resumed into it
    other = cli("run", saved, "--seed", str(written["seed"] + 1), "--trials", "2", "--jobs", "1",
                "-q", *stores.args)  # fmt: skip
    assert other.code == 2 and "seed" in other.err, other.err
    assert len(_study(stores, "iris").trials) == 2  # nothing ran


@pytest.mark.parametrize(("file", "target"), [("iris.parquet", "species"), ("iris.npz", None)])
def test_parquet_and_npz_files_get_the_zero_config_sweep(
    tables: dict[str, Path], file: str, target: str | None
) -> None:
    from nnsweep.cli.zeroconfig import load_sweep
    from nnsweep.spec.defaults import DEFAULT_TRIALS, SMALL_TABLE_TIMEOUT
    from nnsweep.sweep.prepare import prepare

    notes: list[str] = []
    spec, data = prepare(load_sweep(tables[file], target), notes)
    assert spec.name == "iris" and data.task.kind == "multiclass" and data.sizes["test"] > 0
    assert data.folds == 5
    assert (spec.trials, spec.timeout) == (DEFAULT_TRIALS, SMALL_TABLE_TIMEOUT)
    assert [n for n in notes if n.startswith(SPACE_NOTE)] and notes[1].startswith(BUDGET_NOTE)
    expected = _space_of_data(tables[file], target)
    resolved = spec.space.model_dump(exclude_unset=True, exclude_defaults=False)
    assert set(expected) <= set(resolved)
    assert spec.train.early_stopping is not None and spec.train.epochs >= 30


# -- 2. a sweep file with only name and dataset -------------------------------------------------
def test_a_file_without_space_or_trials_gets_the_default_space_and_budget(
    tables: dict[str, Path], tmp_path: Path
) -> None:
    from nnsweep.spec.config import load_spec
    from nnsweep.spec.defaults import DEFAULT_TRIALS, SMALL_TABLE_TIMEOUT
    from nnsweep.sweep.prepare import prepare

    dataset = {"path": str(tables["iris.csv"]), "target": "species"}
    sweep = _write(tmp_path, "bare", {"name": "bare", "dataset": dataset})
    notes: list[str] = []
    spec, _ = prepare(load_spec(sweep), notes)
    assert (spec.trials, spec.timeout) == (DEFAULT_TRIALS, SMALL_TABLE_TIMEOUT)
    assert len(notes) == 2 and notes[0].startswith(SPACE_NOTE), notes
    assert notes[1].startswith(BUDGET_NOTE) and f"{DEFAULT_TRIALS} trials" in notes[1]


@pytest.mark.slow
def test_cli_trials_on_a_file_without_trials_runs_exactly_that_many(
    tables: dict[str, Path], stores: Stores, cli: Callable[..., CliResult]
) -> None:
    dataset = {"path": str(tables["iris.csv"]), "target": "species", "validation": 0.2}
    sweep = _write(stores.root, "bare", {"name": "bare", "dataset": dataset})
    result = cli("run", sweep, "--trials", "2", "--jobs", "1", "-q", *stores.args)
    assert result.code == 0, result.err
    printed = result.out + result.err
    assert printed.count(SPACE_NOTE) == 1 and BUDGET_NOTE not in printed, printed
    study = _study(stores, "bare")
    assert len(_complete(study)) == 2 and len(study.trials) == 2
    expected = _space_of_data(tables["iris.csv"], "species")
    for trial in _complete(study):
        _assert_sampled(trial.params, expected)
    # the default space's start_with: the two plain MLPs are the first trials, as stored
    start = study.user_attrs[SPEC_ATTR]["start_with"]
    assert [t.params for t in sorted(study.trials, key=lambda t: t.number)] == start
    assert [p["n_layers"] for p in start] == [2, 1]


# -- 3. a space with nothing to sample ----------------------------------------------------------
@pytest.mark.slow
def test_a_space_with_every_entry_fixed_runs_one_trial_and_says_so(
    tables: dict[str, Path], stores: Stores, cli: Callable[..., CliResult]
) -> None:
    data = {
        "name": "fixed",
        "dataset": {"path": str(tables["iris.csv"]), "target": "species", "validation": 0.2},
        "trials": 5,
        "seed": 0,
        "train": {"epochs": 3, "batch_size": 32},
        "space": {"n_layers": 1, "units": 16, "activation": "relu", "optimizer": "adam",
                  "learning_rate": 0.01, "dropout": 0.0},
    }  # fmt: skip
    result = cli("run", _write(stores.root, "fixed", data), "--jobs", "1", "-q", *stores.args)
    assert result.code == 0, result.err
    assert (result.out + result.err).count(FIXED_NOTE) == 1, result.out + result.err
    study = _study(stores, "fixed")
    assert len(study.trials) == 1 and len(_complete(study)) == 1


# -- 4. dataset.test_path -----------------------------------------------------------------------
@pytest.mark.slow
def test_test_path_is_what_export_scores_and_no_test_split_is_drawn(
    tables: dict[str, Path], stores: Stores, cli: Callable[..., CliResult]
) -> None:
    import pandas as pd

    train, test = tables["wine_train.csv"], tables["wine_test.csv"]
    data = {
        "name": "own",
        "dataset": {"path": str(train), "target": "cultivar", "validation": 0.2,
                    "test_path": str(test)},
        "trials": 1,
        "seed": 0,
        "sampler": "random",
        "pruner": "none",
        "train": {"epochs": 3, "batch_size": 32},
        "space": {"n_layers": 1, "units": [16, 32], "activation": "relu", "optimizer": "adam",
                  "learning_rate": 0.01, "dropout": 0.0},
    }  # fmt: skip
    sweep = _write(stores.root, "own", data)
    assert cli("run", sweep, "--jobs", "1", "-q", *stores.args).code == 0
    out = stores.root / "export"
    result = cli("export", "own", "--out", out, "--no-baseline", *stores.args)
    assert result.code == 0, result.err
    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    n_train, n_test = len(pd.read_csv(train)), len(pd.read_csv(test))
    assert card["test"]["n"] == n_test == 40
    assert "wine_test.csv" in card["test"]["origin"] and "test_path" in card["test"]["origin"]
    sizes = card["dataset"]["sizes"]
    assert sizes["train"] + sizes["val"] == n_train  # every training-file row trains or validates
    assert sizes["test"] == n_test
    labels = sorted(pd.read_csv(test)["cultivar"].unique().tolist())
    assert sorted(card["test"]["labels"]) == labels
    assert sum(map(sum, card["test"]["confusion_matrix"])) == n_test


# -- 5. bad input: exit 2, one line, nothing written --------------------------------------------
def _table(file: str, target: str | None = "species", **entry: Any) -> Callable[..., list[Any]]:
    def args(tables: dict[str, Path], folder: Path) -> list[Any]:
        dataset: dict[str, Any] = {"path": str(tables[file]), **entry}
        if target is not None:
            dataset["target"] = target
        if "test_path" in entry:
            dataset["test_path"] = str(tables.get(entry["test_path"], folder / "absent.csv"))
        sweep = {"name": "bad", "dataset": dataset, "trials": 1, "train": {"epochs": 1}}
        return [_write(folder, "bad", sweep)]

    return args


def _data(file: str, target: str) -> Callable[..., list[Any]]:
    def args(tables: dict[str, Path], folder: Path) -> list[Any]:
        return [tables.get(file, folder / file), "--target", target]

    return args


WINE = {"file": "wine_train.csv", "target": "cultivar"}
BAD = [
    # (id, command arguments, texts the one stderr line holds)
    ("folds 1", _table("iris.csv", validation={"folds": 1}), ["dataset.validation", "from 2"]),
    ("folds 0", _table("iris.csv", validation={"folds": 0}), ["dataset.validation", "from 2"]),
    ("folds x", _table("iris.csv", validation={"folds": "x"}), ["dataset.validation", "'x'"]),
    ("folds over a class", _table("rare.csv", validation={"folds": 5}),
     ["dataset.validation", "'virginica' has 2", "{folds: 2}"]),
    ("folds over the rows", _table("few.csv", "petal width (cm)", validation={"folds": 15}),
     ["dataset.validation", "there are 11", "{folds: 5}"]),
    ("test_path missing", _table(**WINE, test_path="absent.csv"),
     ["dataset.test_path", "absent.csv", "does not exist"]),
    ("test_path other columns", _table(**WINE, test_path="wine_other.csv"),
     ["dataset.test_path", "'alcohol'", "columns"]),
    ("test_path without target", _table(**WINE, test_path="wine_notarget.csv"),
     ["dataset.test_path", "'cultivar'"]),
    ("--target not a column", _data("iris.csv", "price"), ["'price'", "species"]),
    ("no data file", _data("absent.csv", "species"), ["absent.csv", "not found"]),
]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def existing_stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a study in an Optuna journal and an experiment in mlflow.db (no Keras)."""
    import mlflow
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = tmp_path_factory.mktemp("existing")
    storage = JournalStorage(JournalFileBackend(str(folder / "optuna.log")))
    optuna.create_study(study_name="earlier", storage=storage).add_trial(
        optuna.trial.create_trial(params={}, distributions={}, value=0.5)
    )
    mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").create_experiment("earlier")
    return folder


@pytest.mark.parametrize("existing", [False, True], ids=["no stores", "existing stores"])
@pytest.mark.parametrize(("make", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tables: dict[str, Path],
    existing_stores: Path,
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[..., list[Any]],
    expected: list[str],
    existing: bool,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if existing:
        for name in ("optuna.log", "mlflow.db"):
            (work / name).write_bytes((existing_stores / name).read_bytes())
    before = _snapshot(work)
    monkeypatch.chdir(work)  # the default stores: journal:///optuna.log beside ./mlflow.db
    monkeypatch.delenv("NNSWEEP_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    result = cli("run", *make(tables, inputs), "--jobs", "1", "-q")
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for text in expected:
        assert text in lines[0], lines[0]
    assert _snapshot(work) == before  # no store created, none changed
