"""`nnsweep export` for every task: tables with string labels, gapped labels and a float target
through run → export → predict, the card's test section against fresh computations, and the
intervals it carries (Wilson, bootstrap) on known cases."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import Stores

MNIST_WIDTH = re.compile(r"\b784\b")


def _stores(root: Path) -> Stores:
    return Stores(root, f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")


# -- every task: tables with string labels, gapped labels and a float target -----------------
TABLE_SWEEP: dict[str, Any] = {
    "trials": 1,
    "seed": 0,
    "sampler": "random",
    "pruner": "none",
    "train": {"epochs": 8, "batch_size": 32},
    "space": {"n_layers": 1, "units": 24, "activation": "relu", "optimizer": "adam",
              "learning_rate": 0.01, "dropout": 0.0},
}  # fmt: skip


@pytest.fixture(scope="module")
def table_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per task, `nnsweep run` on a synthetic CSV (binary good/bad, multiclass 1/3/7,
    regression) and `nnsweep export` of its best trial."""
    from nnsweep.cli.main import main
    from tests._tables import write_table

    root = tmp_path_factory.mktemp("tables")
    stores = _stores(root)
    out: dict[str, dict[str, Any]] = {}
    for kind in ("binary", "multiclass", "regression"):
        path = write_table(root, kind, n=300)
        sweep = root / f"{kind}.yaml"
        spec = {"name": kind, "dataset": {"path": str(path), "target": "label"}, **TABLE_SWEEP}
        sweep.write_text(yaml.safe_dump(spec), encoding="utf-8")
        assert main(["run", str(sweep), "--quiet", *stores.args]) == 0
        folder = root / "exports" / kind
        assert main(["export", kind, "--out", str(folder), *stores.args]) == 0
        card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
        out[kind] = {"stores": stores, "out": folder, "card": card, "csv": path, "spec": spec}
    return out


def _reads(entry: dict[str, Any], study: str) -> int:
    """How many reads of ``study``'s test split its ledger holds so far."""
    import optuna

    from nnsweep.export.ledger import reads

    return len(reads(optuna.load_study(study_name=study, storage=entry["stores"].storage)))


def _table_test_split(entry: dict[str, Any]) -> Any:
    """The dataset as the sweep loaded it (the test reads its test split to check the card)."""
    from nnsweep.data.load import load_dataset
    from nnsweep.spec.config import DatasetSpec

    return load_dataset(DatasetSpec.model_validate(entry["spec"]["dataset"]), seed=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "labels"), [("binary", ["bad", "good"]), ("multiclass", [1, 3, 7]),
                         ("regression", None)]
)  # fmt: skip
def test_table_card_names_task_target_columns_and_labels(table_exports, kind, labels):
    """The card names the task, the target, the feature columns and the label mapping, and
    its test figures beat the trivial baseline's; the page says the same."""
    entry = table_exports[kind]
    card = entry["card"]
    assert card["task"] == {"kind": kind, "n_classes": len(labels) if labels else None,
                            "target": "label", "labels": labels}  # fmt: skip
    # auto on a one-trial study: the best trial alone, and the card says why
    assert card["ensemble_choice"] == {"asked": "auto", "k": 1,
                                       "why": "1 COMPLETE trial: nothing to average"}  # fmt: skip
    assert "ensemble" not in card
    assert [c["name"] for c in card["io"]["features"]] == ["x1", "x2", "x3", "colour", "const"]
    assert card["io"]["class_names"] == labels
    # no MNIST leftovers (784 inputs); a word, since a run id may hold the digits 784
    assert "Dense(24, relu)" in card["architecture"] and not MNIST_WIDTH.search(
        card["architecture"]
    )
    assert card["architecture"].startswith("5 columns → ")
    test = card["test"]
    page = (entry["out"] / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "| colour | categorical |" in page and "- target: label" in page
    assert "an optimistic estimate" in page and not MNIST_WIDTH.search(page)
    assert "A constant column's std is stored as 1" in page  # the stats say what they are
    if labels is not None:
        assert test["labels"] == labels and len(test["confusion_matrix"]) == len(labels)
        assert test["accuracy"] > test["baseline"]["accuracy"] + 0.2
        mapping = ", ".join(f"{i} → {label!r}" for i, label in enumerate(labels))
        assert mapping in page
        assert "| **" + str(labels[-1]) + "** |" in page
        assert ("auc" in test) == (kind == "binary")
        if kind == "binary":  # an AUC interval, on the card and in its headline
            low, high = test["auc_ci95"]
            assert 0.0 <= low <= test["auc"] <= high <= 1.0 and high - low > 0.0
            method = test["auc_ci95_method"]  # this table separates its classes: AUC 1
            assert method == "DeLong" or method.startswith("Wilson over the ")
            assert f"auc {test['auc']:.4f} [{low:.4f}, {high:.4f}] (95% {method})" in page
    else:
        assert "accuracy" not in test and "confusion_matrix" not in test
        assert test["mae"] < 0.5 * test["baseline"]["mae"]


@pytest.mark.slow
def test_regression_card_metrics_equal_a_fresh_computation(table_exports):
    """mae, rmse, r2 and the loss (Keras' evaluate: the weighted MSE) of the card are what numpy
    computes from model.keras's predictions on the test split; each bootstrap interval holds
    its figure, and is the one a fresh bootstrap with the card's seed gives."""
    import keras

    from nnsweep.export.intervals import bootstrap
    from nnsweep.tasks import target_scale

    entry = table_exports["regression"]
    data = _table_test_split(entry)
    model = keras.saving.load_model(entry["out"] / "model.keras")
    pred = model.predict(data.x_test, verbose=0)[:, 0].astype(np.float64)
    y = np.asarray(data.y_test, dtype=np.float64)
    err = pred - y
    test = entry["card"]["test"]
    assert test["n"] == len(y) == 60
    assert test["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-6)
    assert test["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-6)
    r2 = 1 - (err**2).sum() / ((y - y.mean()) ** 2).sum()
    assert test["r2"] == pytest.approx(r2, rel=1e-6)
    # the compiled loss: mse weighted by 1 / the training target's variance (unitless)
    _, std = target_scale(np.asarray(data.y_train, dtype=np.float64))
    assert test["loss"] == pytest.approx((err**2).mean() / std**2, rel=1e-4)
    mean = float(np.mean(np.asarray(data.y_train, dtype=np.float64)))
    assert test["baseline"]["mae"] == pytest.approx(np.abs(y - mean).mean(), rel=1e-6)
    fresh = bootstrap(y, pred)
    for key in ("mae", "rmse", "r2"):
        low, high = test[f"{key}_ci95"]
        assert low < test[key] < high
        assert (low, high) == pytest.approx(fresh[key], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_table_export_round_trips_through_predict(table_exports, cli, kind):
    """`nnsweep predict EXPORT_DIR table.csv` (the target column left in) answers with the
    original labels, exactly as the exported model.keras on the same raw rows; the test
    metrics went onto the trial's run."""
    import keras
    import pandas as pd
    from mlflow import MlflowClient

    from nnsweep.data.features import to_inputs
    from nnsweep.tasks import Task

    entry = table_exports[kind]
    result = cli("predict", entry["out"], entry["csv"], "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    frame = pd.read_csv(entry["csv"])
    data = _table_test_split(entry)
    model = keras.saving.load_model(entry["out"] / "model.keras")
    output = model.predict(to_inputs(frame, data.schema), verbose=0)
    card = entry["card"]
    labels, _ = Task.from_dict(card["io"]).labelled(output, card["io"]["class_names"])
    got = [r["prediction"] for r in rows]
    if kind == "regression":
        np.testing.assert_allclose(got, labels, rtol=1e-5)
    else:
        assert got == labels and set(got) <= set(card["task"]["labels"])
        assert float(np.mean(np.array(got) == frame["label"].to_numpy())) > 0.8
    run = MlflowClient(entry["stores"].tracking_uri).get_run(card["mlflow"]["run_id"])
    metric = "test_mae" if kind == "regression" else "test_accuracy"
    assert run.data.metrics[metric] == pytest.approx(card["test"][metric.removeprefix("test_")])
    if kind == "binary":
        assert run.data.metrics["test_auc"] == pytest.approx(card["test"]["auc"])


@pytest.mark.slow
def test_regression_retrain_exports_without_accuracy(table_exports, cli, tmp_path):
    """--retrain works for a regression table: refit on train+validation, the card records
    the training loss and mae of the last epoch (no accuracy anywhere). The fixture's export
    read the test split already, so this second read needs --reread-test, and the card counts
    it."""
    entry = table_exports["regression"]
    before = _reads(entry, "regression")
    assert before >= 1
    result = cli("export", "regression", "--out", tmp_path / "re", "--retrain", "--json",
                 "--reread-test", *entry["stores"].args)  # fmt: skip
    assert result.code == 0, result.err
    card = json.loads(result.out)["card"]
    assert card["test_reads"]["count"] == before + 1 == _reads(entry, "regression")
    assert card["test_reads"]["this"]["retrained"] is True
    assert card["retrain"]["train_size"] == 240
    assert set(card["retrain"]["final"]) == {"loss", "mae"}
    assert card["test"]["mae"] < 0.5 * card["test"]["baseline"]["mae"]
    assert "accuracy" not in json.dumps(card["test"])


def test_wilson_interval_on_known_cases():
    """Wilson 95 %: 0 of 10 → [0, z²/(n+z²)] = [0, 0.2775]; 81 of 263 → [0.2553, 0.3662]
    (the textbook example); each bound solves the score equation |p̂ - p| = z √(p(1-p)/n)."""
    from nnsweep.export.intervals import Z95, wilson

    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(Z95**2 / (10 + Z95**2))
    assert high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(81, 263)
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    for k, n in [(81, 263), (5, 7), (999, 1000), (1, 3)]:
        for p in wilson(k, n):
            assert abs(k / n - p) == pytest.approx(Z95 * np.sqrt(p * (1 - p) / n), rel=1e-9)
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_bootstrap_is_seeded_and_bounded():
    """Same seed, same interval; another seed, a different one; a perfect predictor's
    interval is a point; large inputs are drawn in blocks."""
    from nnsweep.export.intervals import bootstrap

    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    pred = y + rng.normal(scale=0.5, size=500)
    first, again = bootstrap(y, pred), bootstrap(y, pred)
    assert first == again and bootstrap(y, pred, seed=5) != first
    low, high = first["mae"]
    assert low < np.abs(pred - y).mean() < high and high - low < 0.1
    assert bootstrap(y, y)["mae"] == (0.0, 0.0)
    big = np.zeros(50_000)
    assert bootstrap(big, big + 1.0, resamples=200)["rmse"] == pytest.approx((1.0, 1.0))


@pytest.mark.slow
def test_exported_model_keras_in_a_fresh_process_agrees_with_predict(table_exports, cli, tmp_path):
    """The exported model.keras, loaded by plain Keras in a fresh process (no nnsweep) and fed
    the raw CSV columns, gives the probabilities `nnsweep predict EXPORT_DIR` prints."""
    import subprocess
    import sys

    from tests.predict.test_predict_rows import FRESH_ROWS

    entry = table_exports["binary"]
    numeric = [c["name"] for c in entry["card"]["io"]["features"] if c["kind"] == "numeric"]
    saved = tmp_path / "fresh.npy"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_ROWS, json.dumps(numeric), str(entry["out"]),
         str(entry["csv"]), str(saved)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"  # nnsweep was never imported
    result = cli("predict", entry["out"], entry["csv"], "--json")
    assert result.code == 0, result.err
    good = [r["probabilities"]["good"] for r in json.loads(result.out)]
    np.testing.assert_allclose(good, np.load(saved)[:, 0], atol=1e-5)


@pytest.mark.slow
def test_export_summary_lines_carry_the_interval_baseline_and_validation_caveat(
    table_exports, cli, tmp_path
):
    """`nnsweep export` prints the test figure of the refit (240 training rows: 5-fold
    cross-validation, so no trial model saw them all) with its interval, size and the trivial
    baseline; gradient boosting's beside it; how often the test split has now been read (this
    is a second read, with --reread-test); and the validation figure as what it is: the mean
    ± std over the folds of the best of many looks, optimistic."""
    entry = table_exports["multiclass"]
    before = _reads(entry, "multiclass")
    result = cli("export", "multiclass", "--out", tmp_path / "again", "--reread-test",
                 *entry["stores"].args)  # fmt: skip
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    card = json.loads((tmp_path / "again" / "model_card.json").read_text(encoding="utf-8"))
    test, low_high = card["test"], card["test"]["accuracy_ci95"]
    epochs = card["retrain"]["epochs"]
    assert epochs == card["cross_validation"]["refit_epochs"] >= 1
    assert lines[1].startswith(
        f"  test (retrained {epochs} epochs): accuracy {test['accuracy']:.4f} "
        f"[{low_high[0]:.4f}, {low_high[1]:.4f}] (95% Wilson)"
    )
    assert f"on {test['n']} held-out test rows; trivial baseline (majority class)" in lines[1]
    assert lines[2].startswith(f"  accuracy: MLP {test['accuracy']:.4f} [")
    assert lines[2].endswith(f"(95% intervals, same {test['n']} test rows; higher is better)")
    assert before >= 1 and card["test_reads"]["count"] == before + 1
    assert lines[3].startswith(
        f"  test split read {before + 1} times: selection on it makes this figure optimistic; "
        "the one before: "
    )
    cv = card["cross_validation"]
    value = card["objective"]["value"]
    assert cv["folds"] == 5 and cv["rows"] == 240 and len(cv["fold_values"]) == 5
    assert value == pytest.approx(cv["mean"])
    assert lines[4] == (
        f"  sweep: validation val_accuracy {value:.4f} ± {cv['std']:.4f} (mean ± std over 5 "
        "folds of 240 training rows; the best of 1 completed trial(s), an optimistic "
        "estimate: the test figure is the unbiased one)"
    )
    assert lines[-1].endswith("ROWS.csv --csv")


@pytest.mark.slow
def test_export_reads_only_the_data_the_study_was_swept_on(table_exports, tmp_path):
    """`data_path` points export at the sweep's file elsewhere (the same card follows; a
    second read of the test split, so ``reread_test``); a file whose content changed is
    refused (its splits, test split included, would differ), and nothing is written: no
    folder, no read in the study's ledger."""
    import shutil

    from nnsweep.errors import ExportError
    from nnsweep.export.export import export_best

    entry = table_exports["regression"]
    stores = entry["stores"]
    moved = tmp_path / "elsewhere.csv"
    shutil.copy(entry["csv"], moved)
    result = export_best("regression", out=tmp_path / "same", storage_url=stores.storage,
                         tracking_uri=stores.tracking_uri, data_path=moved,
                         reread_test=True)  # fmt: skip
    assert result.card["test"]["mae"] == pytest.approx(entry["card"]["test"]["mae"])
    assert result.card["dataset"]["fingerprint"] == entry["card"]["dataset"]["fingerprint"]
    read = _reads(entry, "regression")
    assert read == result.card["test_reads"]["count"] >= 2

    changed = tmp_path / "changed.csv"
    text = entry["csv"].read_text(encoding="utf-8").splitlines()
    changed.write_text("\n".join([*text, text[-1]]) + "\n", encoding="utf-8")  # one row more
    with pytest.raises(ExportError, match="is not what study 'regression' was swept on"):
        export_best("regression", out=tmp_path / "other", storage_url=stores.storage,
                    tracking_uri=stores.tracking_uri, data_path=changed,
                    reread_test=True)  # fmt: skip
    assert not (tmp_path / "other").exists()
    assert _reads(entry, "regression") == read


@pytest.mark.slow
def test_mlflow_pyfunc_predicts_an_all_numeric_table_model(tmp_path):
    """MLflow's generic loader on the sweep's logged model (the card's ``models:/m-…``; a
    holdout sweep, since a cross-validated trial logs no model), fed the raw table rows
    (missing cells left in), answers as model.keras does on the same rows: the original label,
    its probability and every label's; its signature is the table's columns, each ``Any``
    (MLflow would refuse int64 rows for a ``double``)."""
    import keras
    import mlflow
    import mlflow.pyfunc

    from nnsweep.cli.main import main
    from nnsweep.data.features import to_inputs
    from nnsweep.data.modelio import ModelIO
    from tests._tables import make_table

    rows = make_table("binary", 300, 0).drop(columns=["colour"])
    csv = tmp_path / "numeric.csv"
    rows.to_csv(csv, index=False)
    stores = _stores(tmp_path)
    dataset = {"path": str(csv), "target": "label", "validation": 0.2}
    spec = {"name": "numeric", "dataset": dataset, **TABLE_SWEEP}
    (tmp_path / "numeric.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert main(["run", str(tmp_path / "numeric.yaml"), "--quiet", *stores.args]) == 0
    out = tmp_path / "export"
    assert main(["export", "numeric", "--out", str(out), *stores.args]) == 0
    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    assert card["retrain"] is None and card["mlflow"]["model_uri"].startswith("models:/m-")
    features = rows.head(40).drop(columns=["label"])
    assert features["x3"].isna().any()  # the pyfunc imputes as the model was trained
    inputs = to_inputs(features, ModelIO.from_dict(card["io"], "card").schema)
    expected = keras.saving.load_model(out / "model.keras").predict(inputs, verbose=0)[:, 0]
    mlflow.set_tracking_uri(stores.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(card["mlflow"]["model_uri"])
    finally:
        mlflow.set_tracking_uri(None)
    signature = [(c.name, str(c.type)) for c in model.metadata.get_input_schema().inputs]
    assert signature == [("x1", "Any"), ("x2", "Any"), ("x3", "Any"), ("const", "Any")]
    got = model.predict(features)
    assert list(got.columns) == ["prediction", "probability", "probabilities"]
    assert list(got["prediction"]) == ["good" if p >= 0.5 else "bad" for p in expected]
    good = [p["good"] for p in got["probabilities"]]
    np.testing.assert_allclose(good, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["probability"], np.maximum(expected, 1 - expected),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
