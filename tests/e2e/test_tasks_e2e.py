"""``nnsweep run`` end to end for every task: public tables as CSV/NPZ (a Parquet copy loads as
its CSV), Keras' own datasets from files in their download layout, and every bad ``dataset``
entry refused before anything is written.

Real Keras training on tiny data (a few hundred rows, 1 or 2 trials, a few epochs), a real SQLite
Optuna storage and a real SQLite MLflow store in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nnsweep.track.tracker import DIGEST_CHARS
from tests.conftest import CliResult, Stores

SPACE = {
    "n_layers": 1,
    "units": {"low": 8, "high": 32, "log": True},
    "activation": ["relu", "tanh"],
    "optimizer": "adam",
    "learning_rate": 0.01,
    "dropout": 0.0,
}


def _sweep(folder: Path, name: str, dataset: dict[str, Any], **changes: Any) -> Path:
    data: dict[str, Any] = {
        "name": name,
        "dataset": dataset,
        "trials": 2,
        "seed": 0,
        "sampler": "random",
        "pruner": "none",
        "train": {"epochs": 8, "batch_size": 32},
        "space": SPACE,
        **changes,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scikit-learn's public tables written the way users' files arrive."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    folder = tmp_path_factory.mktemp("tables")
    cancer = load_breast_cancer(as_frame=True).frame
    cancer.insert(0, "diagnosis", cancer.pop("target").map({0: "M", 1: "B"}))
    cancer.to_csv(folder / "cancer.csv", index=False)

    wine = load_wine(as_frame=True).frame
    wine["cultivar"] = wine.pop("target").map({0: 1, 1: 3, 2: 7})  # gapped integer labels
    wine.to_csv(folder / "wine.csv", index=False)

    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    diabetes.to_csv(folder / "diabetes.csv", index=False)
    diabetes.to_parquet(folder / "diabetes.parquet")

    # a messy table: a constant column, a text column, blank cells and quoted numbers
    messy = load_wine(as_frame=True).frame.rename(columns={"target": "kind"})
    rng = np.random.default_rng(0)
    messy["constant"] = 4.2
    messy["region"] = rng.choice(["north", "south", "east"], size=len(messy))
    messy.loc[rng.choice(len(messy), 25, replace=False), "alcohol"] = np.nan
    messy["kind"] = messy["kind"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    messy.to_csv(folder / "messy.csv", index=False, quoting=1)  # every cell quoted

    np.savez(
        folder / "cancer.npz",
        x=cancer.drop(columns="diagnosis").to_numpy(),
        y=cancer["diagnosis"].to_numpy().astype(str),
    )
    return {p.stem + p.suffix: p for p in folder.iterdir()}


def _mlflow_runs(stores: Stores, experiment: str) -> tuple[Any, list[Any], Any]:
    from mlflow import MlflowClient

    client = MlflowClient(stores.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("nnsweep.role") == "study")
    return client, [r for r in runs if r.data.tags.get("nnsweep.role") == "trial"], parent


def _study(stores: Stores, name: str) -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=stores.storage)


CASES = [
    # file, target, task, objective, direction, headline, worst acceptable best value
    ("cancer.csv", "diagnosis", "binary", "val_accuracy", "maximize", "over 2 classes", 0.80),
    ("wine.csv", "cultivar", "multiclass", "val_accuracy", "maximize", "over 3 classes", 0.60),
    ("diabetes.csv", "target", "regression", "val_mae", "minimize", "regression of", 60.0),
    ("messy.csv", "kind", "multiclass", "val_accuracy", "maximize", "1 categorical", 0.60),
    ("cancer.npz", None, "binary", "val_auc", "maximize", "30 numeric", 0.85),
]
# Every trial of a sweep logs what it trained on: the first table shows it with 2 trials; the
# others, there for their task and file, run 1 trial (a 5-fold cross-validation, 5 fits).
TWO_TRIALS = CASES[0][0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "target", "task", "metric", "direction", "headline", "worst"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_run_on_a_table_infers_the_task_and_logs_what_it_trained_on(
    tables: dict[str, Path],
    stores: Stores,
    cli: Callable[..., CliResult],
    file: str,
    target: str | None,
    task: str,
    metric: str,
    direction: str,
    headline: str,
    worst: float,
) -> None:
    from nnsweep.data.load import load_dataset
    from nnsweep.spec.config import load_spec

    dataset = {"path": str(tables[file]), **({"target": target} if target else {})}
    default = metric in ("val_accuracy", "val_mae")  # else named in the file
    n_trials = 2 if file == TWO_TRIALS else 1
    changes = {"trials": n_trials, **({} if default else {"objective": metric})}
    sweep = _sweep(stores.root, "t", dataset, **changes)
    result = cli("run", sweep, "--jobs", "1", "-q", *stores.args)
    assert result.code == 0, result.err
    data_line = next(line for line in result.err.splitlines() if line.startswith("data: "))
    assert f"{task}" in data_line and headline in data_line

    study = _study(stores, "t")
    assert study.direction.name.lower() == direction
    values = [t.value for t in study.trials if t.state.name == "COMPLETE"]
    assert len(values) == n_trials
    best = max(values) if direction == "maximize" else min(values)
    assert (best >= worst) if direction == "maximize" else (best <= worst), best

    client, trials, parent = _mlflow_runs(stores, "t")
    assert parent.data.params["objective_metric"] == metric
    assert parent.data.params["task"] == task
    data = load_dataset(load_spec(sweep).dataset, seed=0)  # the Dataset the run used (cached)
    assert len(trials) == n_trials
    for run in trials:
        assert metric in run.data.metrics and "val_loss" in run.data.metrics
        history = client.get_metric_history(run.info.run_id, metric)
        assert [m.step for m in history] == list(range(1, 9))  # one point per epoch, from 1
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == tables[file].name
        assert inp.dataset.digest == data.fingerprint[:DIGEST_CHARS]
        assert f'"train_rows": {data.sizes["train"]}' in inp.dataset.profile
        assert "learning_curves.png" in [a.path for a in client.list_artifacts(run.info.run_id)]
    if task == "binary":
        assert all("val_auc" in r.data.metrics for r in trials)
    if task == "regression":
        assert not any("val_accuracy" in r.data.metrics for r in trials)


def test_a_parquet_table_is_swept_as_its_csv(tables: dict[str, Path]) -> None:
    """The Parquet copy of diabetes loads as the table the diabetes.csv case above sweeps end to
    end: the same columns, rows, splits, folds and task, and the same data line."""
    from nnsweep.data.load import load_dataset
    from nnsweep.spec.config import DatasetSpec

    def load(file: str) -> Any:
        spec = DatasetSpec.model_validate({"path": str(tables[file]), "target": "target"})
        return load_dataset(spec, seed=0)

    csv, parquet = load("diabetes.csv"), load("diabetes.parquet")
    assert parquet.name == "diabetes.parquet" and parquet.fingerprint != csv.fingerprint
    assert parquet.describe() == csv.describe().replace("diabetes.csv", "diabetes.parquet")
    assert "regression of" in parquet.describe() and "10 numeric" in parquet.describe()
    assert (parquet.task, parquet.folds, parquet.schema) == (csv.task, csv.folds, csv.schema)
    assert (parquet.sizes, parquet.target) == (csv.sizes, csv.target) and parquet.folds == 5
    for split in ("train", "val", "test"):
        x, want = getattr(parquet, f"x_{split}"), getattr(csv, f"x_{split}")
        assert x.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(np.asarray(x[key]), np.asarray(want[key]))
        np.testing.assert_array_equal(getattr(parquet, f"y_{split}"), getattr(csv, f"y_{split}"))


@pytest.mark.slow
def test_resume_refuses_another_task(
    tables: dict[str, Path], stores: Stores, cli: Callable[..., CliResult]
) -> None:
    # a holdout and 1 epoch: one short fit makes the study the second file may not resume
    wine = {"path": str(tables["wine.csv"]), "target": "cultivar", "validation": 0.25}
    sweep = _sweep(stores.root, "r", wine, train={"epochs": 1})
    assert cli("run", sweep, "--jobs", "1", "-q", "--trials", "1", *stores.args).code == 0
    regression = _sweep(stores.root, "r", {**wine, "task": "regression"}, train={"epochs": 1})
    result = cli("run", regression, "--jobs", "1", "-q", "--trials", "2", *stores.args)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result.err
    assert "--study" in result.err


def _keras_files(folder: Path) -> dict[str, Path]:
    def words(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty(n, dtype=object)
        out[:] = [rng.integers(1, 60, size=rng.integers(5, 20)).tolist() for _ in range(n)]
        return out

    y = np.arange(120) % 2
    np.savez(folder / "imdb.npz", x_train=words(120, 0), y_train=y, x_test=words(40, 1),
             y_test=np.arange(40) % 2)  # fmt: skip
    np.savez(folder / "reuters.npz", x=words(150, 2), y=np.arange(150) % 5)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 13))
    np.savez(folder / "boston.npz", x=x, y=20 + 5 * x[:, 0] + rng.normal(size=150))
    return {"imdb": folder / "imdb.npz", "reuters": folder / "reuters.npz",
            "boston_housing": folder / "boston.npz"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "metric", "line"),
    [
        ("imdb", "val_accuracy", "binary over 2 classes"),
        ("reuters", "val_accuracy", "multiclass over 46 classes"),
        ("boston_housing", "val_mae", "regression of 'MEDV'"),
    ],
)
def test_the_notebooks_datasets_from_their_keras_files(
    stores: Stores, cli: Callable[..., CliResult], name: str, metric: str, line: str
) -> None:
    path = _keras_files(stores.root)[name]
    extra = {"num_words": 100} if name != "boston_housing" else {}
    sweep = _sweep(stores.root, name, {"name": name, **extra}, trials=1, train={"epochs": 2})
    result = cli("run", sweep, "--data-path", path, "--jobs", "1", "-q", *stores.args)
    assert result.code == 0, result.err
    assert line in result.err
    study = _study(stores, name)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 1
    _, trials, parent = _mlflow_runs(stores, name)
    assert parent.data.params["objective_metric"] == metric
    assert all(metric in r.data.metrics for r in trials)
    assert {r.inputs.dataset_inputs[0].dataset.source_type for r in trials} == {"local"}


def _write(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return write


_ROWS = "a,b,label\n" + "".join(f"{i},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(60))
BAD = [
    # (id, file writer, dataset entry beyond path, objective, expected text in the one line)
    ("missing target", _write("t.csv", _ROWS), {"target": "price"}, None, "price"),
    ("unknown task", _write("t.csv", _ROWS), {"target": "label", "task": "ranking"}, None,
     "dataset.task"),
    ("one class", _write("t.csv", "a,label\n" + "1,x\n" * 30), {"target": "label"}, None,
     "distinct value"),
    ("unreadable", _write("t.parquet", b"\x00\x01not parquet" * 20), {"target": "label"}, None,
     "t.parquet"),
    ("empty", _write("t.csv", ""), {"target": "label"}, None, "t.csv"),
    ("no file", lambda folder: folder / "absent.csv", {"target": "label"}, None, "absent.csv"),
    ("binary of 3 classes", _write("t.csv", _ROWS), {"target": "b", "task": "binary"}, None,
     "multiclass"),
    ("regression of text", _write("t.csv", _ROWS), {"target": "label", "task": "regression"},
     None, "regression needs numbers"),
    ("mae for classes", _write("t.csv", _ROWS), {"target": "label"}, "val_mae", "val_accuracy"),
    ("auc for multiclass", _write("t.csv", _ROWS), {"target": "b"}, "val_auc", "multiclass"),
    ("accuracy for regression", _write("t.csv", _ROWS),
     {"target": "a", "task": "regression"}, "val_accuracy", "val_mae"),
]  # fmt: skip


@pytest.mark.parametrize(("writer", "entry", "objective", "expected"),
                         [b[1:] for b in BAD], ids=[b[0] for b in BAD])  # fmt: skip
def test_bad_dataset_entries_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path,
    cli: Callable[..., CliResult],
    writer: Callable[[Path], Path],
    entry: dict[str, Any],
    objective: str | None,
    expected: str,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = writer(data_dir)
    changes = {"objective": objective} if objective else {}
    sweep = _sweep(tmp_path, "bad", {"path": str(path), **entry}, **changes)
    work = tmp_path / "stores"
    work.mkdir()
    storage, uri = f"sqlite:///{work / 'optuna.db'}", f"sqlite:///{work / 'mlflow.db'}"
    result = cli("run", sweep, "--jobs", "1", "-q", "--storage", storage, "--tracking-uri", uri)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err
    assert list(work.iterdir()) == []  # neither store was created


def test_objectives_are_checked_when_the_task_is_known_from_the_file() -> None:
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import parse_spec

    base = "name: s\ntrials: 1\n"
    assert parse_spec(base + "dataset: boston_housing\n").objective.metric == "val_mae"
    assert parse_spec(base + "dataset: imdb\nobjective: val_auc\n").objective.direction == (
        "maximize"
    )
    spec = parse_spec(base + "dataset: {path: t.csv, target: y}\n")
    assert spec.objective.metric is None  # inferred task: resolved once the data is loaded
    assert spec.for_task("regression").objective.metric == "val_mae"
    assert spec.for_task("binary").objective.direction == "maximize"
    with pytest.raises(SpecError, match=r"objective.metric: 'val_mae' .* reuters|multiclass"):
        parse_spec(base + "dataset: reuters\nobjective: val_mae\n")


@pytest.mark.slow
def test_plain_sgd_trains_a_regression_in_large_units(
    tables: dict[str, Path], stores: Stores, cli: Callable[..., CliResult]
) -> None:
    """The loss is weighted by 1/variance of the target: SGD's steps do not grow with its units."""
    space = {**SPACE, "optimizer": "sgd", "learning_rate": 0.01}
    dataset = {"path": str(tables["diabetes.csv"]), "target": "target"}  # std ~77
    sweep = _sweep(stores.root, "sgd", dataset, trials=1, space=space, train={"epochs": 3})
    result = cli("run", sweep, "--jobs", "1", "-q", *stores.args)
    assert result.code == 0, result.err
    (trial,) = _study(stores, "sgd").trials
    assert trial.state.name == "COMPLETE" and trial.value < 70.0  # mean predictor: ~64
