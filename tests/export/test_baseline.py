"""Gradient boosting on the card: its figures equal a direct scikit-learn computation on the
rows the export used (wine with a categorical column; diabetes), the export summary compares
it with the MLP, and --no-baseline skips it."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.export._study import copy_stores, dataset_of, sweep

Z95 = 1.959963984540054


def _export(stores: Any, study: str, out: Path, *args: str) -> tuple[int, str, str]:
    from nnsweep.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["export", study, "--out", str(out), *args, *stores.args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per table, a 1-trial sweep exported with gradient boosting and, from a copy of the
    stores, with --no-baseline."""
    out: dict[str, dict[str, Any]] = {}
    for table in ("wine", "diabetes"):
        root = tmp_path_factory.mktemp(table)
        stores, spec = sweep(root, table, table, trials=1, log_models="best")
        entry: dict[str, Any] = {"stores": stores, "spec": spec, "csv": root / f"{table}.csv"}
        for name, args in (("with", ()), ("without", ("--no-baseline",))):
            copy = copy_stores(stores, root / name)
            folder = root / name / "out"
            code, stdout, stderr = _export(copy, table, folder, *args)
            assert code == 0, stderr
            card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
            entry[name] = {"stores": copy, "out": folder, "card": card, "stdout": stdout}
        out[table] = entry
    return out


def _rows_of(numeric: np.ndarray, frame: Any, columns: list[str]) -> np.ndarray:
    """The CSV row index of each row of ``numeric`` (the model's numeric input, float32)."""
    where = {
        tuple(row): i
        for i, row in enumerate(frame[columns].to_numpy(dtype=np.float64).astype(np.float32))
    }
    assert len(where) == len(frame)  # every CSV row is told apart by its numeric values
    return np.array([where[tuple(row)] for row in np.asarray(numeric, dtype=np.float32)])


def _by_hand(entry: dict[str, Any]) -> dict[str, Any]:
    """Boosting fit here: scikit-learn's defaults (random_state = the sweep's seed) on the
    export's training rows, read from the CSV (numbers at float32, as the MLP reads them), a
    categorical column coded by its training
    frequency rank (ties by name) and marked categorical; scored on the test rows."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from nnsweep.data.features import NUMERIC_INPUT

    data = dataset_of(entry["stores"], entry["spec"]["name"])
    frame = pd.read_csv(entry["csv"])
    numeric = [c for c in frame.columns if c not in ("label", "band")]
    train = frame.iloc[_rows_of(data.x_train[NUMERIC_INPUT], frame, numeric)]
    test = frame.iloc[_rows_of(data.x_test[NUMERIC_INPUT], frame, numeric)]
    assert len(set(train.index) & set(test.index)) == 0
    cat = ["band"] if "band" in frame else []
    counts = train["band"].value_counts() if cat else pd.Series(dtype=int)
    rank = {v: float(i) for i, v in enumerate(sorted(counts.index, key=lambda v: (-counts[v], v)))}

    def matrix(rows: Any) -> np.ndarray:
        # the model's numeric input is float32: boosting reads the values the MLP reads
        parts = [rows[numeric].to_numpy(dtype=np.float64).astype(np.float32).astype(np.float64)]
        parts += [rows[c].map(rank).to_numpy(dtype=np.float64).reshape(-1, 1) for c in cat]
        return np.concatenate(parts, axis=1)

    flags = np.array([False] * len(numeric) + [True] * len(cat))
    seed = entry["spec"]["seed"]
    if cat:
        labels = list(data.class_names)
        y_train = train["label"].map(labels.index).to_numpy()
        y_test = test["label"].map(labels.index).to_numpy()
        model = HistGradientBoostingClassifier(categorical_features=flags, random_state=seed)
        model.fit(matrix(train), y_train)
        hits = int((model.predict(matrix(test)) == y_test).sum())
        return {"n": len(y_test), "hits": hits, "train": len(train), "iterations": model.n_iter_}
    y_train = train["label"].to_numpy(dtype=np.float64)
    y_test = test["label"].to_numpy(dtype=np.float64)
    model = HistGradientBoostingRegressor(categorical_features=flags, random_state=seed)
    model.fit(matrix(train), y_train)
    pred = model.predict(matrix(test))
    return {"n": len(y_test), "y": y_test, "pred": pred, "train": len(train),
            "iterations": model.n_iter_}  # fmt: skip


def _wilson(k: int, n: int) -> tuple[float, float]:
    p, z2 = k / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.slow
def test_classifier_figures_equal_a_direct_sklearn_fit(exports):
    """wine: the card's accuracy and Wilson interval are a fresh HistGradientBoostingClassifier's
    on the same rows; the summary and the page carry the MLP-vs-boosting line; MLflow has it."""
    from mlflow import MlflowClient

    entry = exports["wine"]
    mine = _by_hand(entry)
    export = entry["with"]
    gbm = export["card"]["gradient_boosting"]
    assert gbm["estimator"] == "HistGradientBoostingClassifier"
    assert gbm["fitted_on"] == "train" and gbm["train_size"] == mine["train"]
    assert gbm["iterations"] == mine["iterations"]
    assert gbm["columns"]["categorical_native"] == ["band"]
    accuracy = mine["hits"] / mine["n"]
    assert gbm["test"]["n"] == mine["n"] == export["card"]["test"]["n"]
    assert gbm["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert gbm["test"]["accuracy_ci95"] == pytest.approx(_wilson(mine["hits"], mine["n"]), 1e-9)
    low, high = gbm["test"]["accuracy_ci95"]
    mlp = export["card"]["test"]
    line = (
        f"accuracy: MLP {mlp['accuracy']:.4f} [{mlp['accuracy_ci95'][0]:.4f}, "
        f"{mlp['accuracy_ci95'][1]:.4f}] vs gradient boosting {accuracy:.4f} [{low:.4f}, "
        f"{high:.4f}] (95% intervals, same {mine['n']} test rows; higher is better)"
    )
    assert f"  {line}\n" in export["stdout"]
    page = (export["out"] / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Gradient boosting beside the MLP" in page and f"- {line}" in page
    run = MlflowClient(tracking_uri=export["stores"].tracking_uri).get_run(
        export["card"]["mlflow"]["run_id"]
    )
    assert run.data.metrics["gbm_test_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert "gradient boosting on the same rows" in export["card"]["test_reads"]["this"]["scored"]


@pytest.mark.slow
def test_regressor_figures_equal_a_direct_sklearn_fit(exports):
    """diabetes: the card's MAE, RMSE and bootstrap intervals are a fresh
    HistGradientBoostingRegressor's on the same rows; the summary compares MAE."""
    from nnsweep.export.intervals import bootstrap

    entry = exports["diabetes"]
    mine = _by_hand(entry)
    export = entry["with"]
    gbm = export["card"]["gradient_boosting"]
    assert gbm["estimator"] == "HistGradientBoostingRegressor"
    assert gbm["train_size"] == mine["train"] and gbm["iterations"] == mine["iterations"]
    err = mine["pred"] - mine["y"]
    mae = float(np.abs(err).mean())
    assert gbm["test"]["n"] == mine["n"]
    assert gbm["test"]["mae"] == pytest.approx(mae, rel=1e-6)
    assert gbm["test"]["rmse"] == pytest.approx(float(np.sqrt((err**2).mean())), rel=1e-6)
    fresh = bootstrap(mine["y"], mine["pred"])
    assert gbm["test"]["mae_ci95"] == pytest.approx(fresh["mae"], rel=1e-6)
    low, high = gbm["test"]["mae_ci95"]
    assert f" vs gradient boosting {mae:.4g} [{low:.4g}, {high:.4g}] (95% intervals, same " \
        f"{mine['n']} test rows; lower is better)" in export["stdout"]  # fmt: skip
    assert "  mae: MLP " in export["stdout"]


@pytest.mark.slow
@pytest.mark.parametrize("table", ["wine", "diabetes"])
def test_no_baseline_skips_gradient_boosting(exports, table):
    """--no-baseline: no boosting fit, the card and page say it was turned off, no comparison
    line, no gbm_test_* metric; the MLP's own test figures are the same as with boosting."""
    from mlflow import MlflowClient

    from nnsweep.export.baseline import OFF

    export = exports[table]["without"]
    card = export["card"]
    assert card["gradient_boosting"] == {"skipped": OFF}
    page = (export["out"] / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"Not fitted: {OFF}." in page
    assert "gradient boosting" not in export["stdout"]
    assert "gradient boosting" not in card["test_reads"]["this"]["scored"]
    run = MlflowClient(tracking_uri=export["stores"].tracking_uri).get_run(card["mlflow"]["run_id"])
    assert not [k for k in run.data.metrics if k.startswith("gbm_test_")]
    assert "test_loss" in run.data.metrics
    other = exports[table]["with"]["card"]["test"]
    assert card["test"]["loss"] == pytest.approx(other["loss"], rel=1e-6)
