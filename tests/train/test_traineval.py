"""The dropout-off train-eval callback: its subset, its logged values, the verdict it enables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnsweep.spec.config import DiagnosisSpec
from nnsweep.tasks import BINARY, MULTICLASS, REGRESSION, Task
from nnsweep.train.diagnosis import diagnose
from nnsweep.train.model import HyperParams, build_model
from nnsweep.train.traineval import (
    BASELINE_KEY,
    MAX_ROWS,
    baseline_loss,
    subset_index,
    subset_size,
    train_eval_keys,
)

RULES = DiagnosisSpec()


@pytest.mark.parametrize(
    ("n_train", "n_val", "size"),
    [(3600, 400, 400), (300, 400, 300), (54000, 6000, MAX_ROWS), (10, 0, 0), (1, 5, 1)],
)
def test_subset_is_the_validation_size_capped(n_train: int, n_val: int, size: int) -> None:
    assert subset_size(n_train, n_val) == size
    index = subset_index(n_train, n_val, seed=3)
    assert len(index) == size
    assert len(set(index.tolist())) == size  # no row twice
    assert np.all(np.diff(index) > 0) and (size == 0 or 0 <= index[0] <= index[-1] < n_train)


def test_subset_is_seeded() -> None:
    first = subset_index(3600, 400, seed=42)
    np.testing.assert_array_equal(first, subset_index(3600, 400, seed=42))
    assert not np.array_equal(first, subset_index(3600, 400, seed=43))
    # a random draw, not the first rows (a split sorted by class would give one class)
    assert first[-1] > 3000 and first[0] < 600


def test_baseline_loss_is_the_trivial_predictors_loss() -> None:
    y_train = np.array([1.0, 2.0, 3.0, 6.0])  # mean 3, variance 3.5 (the loss's weight 1/3.5)
    got = baseline_loss(Task(REGRESSION), y_train, np.array([3.0, 5.0]))
    assert got == pytest.approx(2.0 / 3.5)
    labels = np.array([0, 0, 0, 1])  # prior 0.75 / 0.25
    expected = -(np.log(0.75) + np.log(0.25)) / 2
    assert baseline_loss(Task(BINARY, 2), labels, np.array([0, 1])) == pytest.approx(expected)
    three = np.array([0, 0, 1, 2])  # prior 0.5, 0.25, 0.25
    got = baseline_loss(Task(MULTICLASS, 3), three, np.array([2, 2, 0]))
    assert got == pytest.approx(-(2 * np.log(0.25) + np.log(0.5)) / 3)
    # a class absent from training is clipped as Keras clips, not log(0)
    assert baseline_loss(Task(MULTICLASS, 3), np.array([0, 1]), np.array([2])) == pytest.approx(
        -np.log(1e-7)
    )


def test_keys_follow_the_task() -> None:
    assert train_eval_keys(Task(BINARY, 2)) == (
        "train_eval_loss",
        "train_eval_accuracy",
        "train_eval_auc",
        BASELINE_KEY,
    )
    assert train_eval_keys(Task(REGRESSION)) == ("train_eval_loss", "train_eval_mae", BASELINE_KEY)


def _table(tmp_path: Path, kind: str) -> Any:
    """A scikit-learn table as CSV with a text column: the model takes a dict of columns."""
    import sklearn.datasets

    from nnsweep.data.load import load_dataset
    from nnsweep.spec.config import DatasetSpec

    loader = {BINARY: "load_breast_cancer", MULTICLASS: "load_iris", REGRESSION: "load_diabetes"}
    frame = getattr(sklearn.datasets, loader[kind])(as_frame=True).frame
    first = frame.columns[0]
    frame["kind"] = np.where(frame[first] > frame[first].median(), "high", "low")
    frame.to_csv(tmp_path / "t.csv", index=False)
    spec = DatasetSpec(path=tmp_path / "t.csv", target="target", validation=0.2)
    data = load_dataset(spec, seed=0)  # a holdout: these tests need validation rows
    assert data.task.kind == kind and isinstance(data.x_train, dict)
    return data


def _digits() -> Any:
    from nnsweep.data.load import load_dataset

    return load_dataset("mnist_5k", validation=0.1, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["digits", BINARY, MULTICLASS, REGRESSION])
def test_callback_logs_dropout_off_scores_of_its_fixed_subset(tmp_path: Path, source: str) -> None:
    """Each epoch's train_eval_* equal a fresh evaluate (dropout off) on the same seeded rows,
    reach the callbacks after it and the History, and differ from Keras' dropout-on figures."""
    import keras

    from nnsweep.data.features import take_rows
    from nnsweep.train.traineval import train_eval_callback

    data = _digits() if source == "digits" else _table(tmp_path, source)
    seed, n_val = 7, len(data.y_val)
    index = subset_index(len(data.y_train), n_val, seed)
    x_sub, y_sub = take_rows(data.x_train, index), data.y_train[index]
    seen: list[dict[str, float]] = []
    fresh: list[dict[str, float]] = []

    class After(keras.callbacks.Callback):
        """Runs after TrainEval: what it sees, and the model scored anew on the same rows."""

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            seen.append(dict(logs or {}))
            fresh.append(self.model.evaluate(x_sub, y_sub, verbose=0, return_dict=True))

    keras.utils.set_random_seed(0)
    hp = HyperParams(n_layers=1, units=(32,), dropout=0.5, batch_size=32, epochs=2)
    model = build_model(hp, train_size=len(data.y_train), **data.model_kwargs())
    callback = train_eval_callback(data.task, data.x_train, data.y_train, n_val, seed)
    assert callback.rows == len(index) == min(n_val, len(data.y_train))
    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=2,
        batch_size=32,
        callbacks=[callback, After()],
        verbose=0,
    ).history

    keys = train_eval_keys(data.task)
    assert all(len(history[k]) == 2 for k in keys)
    baseline = baseline_loss(data.task, data.y_train, y_sub)
    for epoch in range(2):
        for key in keys:
            assert seen[epoch][key] == pytest.approx(history[key][epoch])
        for name, value in fresh[epoch].items():
            assert history[f"train_eval_{name}"][epoch] == pytest.approx(value, rel=1e-5)
        assert history[BASELINE_KEY][epoch] == pytest.approx(baseline)
    assert set(fresh[0]) == {"loss", *data.task.metric_names}
    # dropout 0.5 on: Keras' epoch-averaged training loss is not the dropout-off one
    assert history["loss"][-1] != pytest.approx(history["train_eval_loss"][-1], rel=0.02)


@pytest.mark.slow
def test_dropout_hides_overfitting_that_the_dropout_off_measure_shows() -> None:
    """Issue 13.3 on real training: 300 digits, 2 x 256 units, dropout 0.5, 8 epochs.

    With dropout off the model scores ~0.92-0.95 on its training rows and ~0.80-0.84 on the
    validation split: a gap over 0.05 at each of the last 3 epochs, so ``overfit``. Keras'
    own ``accuracy`` (dropout on, averaged over the epoch) is ~0.76-0.87, level with
    validation at epoch 6, so read alone it hides the gap and calls the fit ``underfit``
    (still improving), the error the issue describes.
    """
    import keras

    from nnsweep.train.traineval import train_eval_callback

    data = _digits()
    rows = np.random.default_rng(5).choice(len(data.y_train), 300, replace=False)
    x, y = data.x_train[rows], data.y_train[rows]
    x_val, y_val = data.x_val[:300], data.y_val[:300]
    keras.utils.set_random_seed(0)
    hp = HyperParams(n_layers=2, units=(256, 256), dropout=0.5, batch_size=32, epochs=8)
    model = build_model(hp, train_size=len(y), **data.model_kwargs())
    callback = train_eval_callback(data.task, x, y, len(y_val), seed=0)
    history = model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=8,
        batch_size=32,
        callbacks=[callback],
        verbose=0,
    ).history

    off, on = np.array(history["train_eval_accuracy"]), np.array(history["accuracy"])
    val = np.array(history["val_accuracy"])
    assert np.all(off[-3:] - val[-3:] > RULES.overfit_gap + 0.03)  # clearly, not by a hair
    assert np.all(off[-3:] - on[-3:] > 0.04)  # dropout costs Keras' figure several points
    assert np.min(on[-3:] - val[-3:]) < RULES.overfit_gap  # ... enough to hide the gap

    diag = diagnose(history, RULES)
    assert diag is not None and diag.fit == "overfit", diag.reason
    assert diag.dropout_off and "train_eval_accuracy (dropout off)" in diag.reason
    assert diag.gap == pytest.approx(off[-1] - val[-1])

    keras_only = {k: history[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    before = diagnose(keras_only, RULES)
    assert before is not None and before.fit == "underfit", before.reason
    assert "still improving" in before.reason and not before.dropout_off


def _run_of_the_only_trial(stores: Any) -> Any:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stores.tracking_uri)
    runs = [
        r
        for e in client.search_experiments()
        for r in client.search_runs([e.experiment_id])
        if r.data.tags.get("nnsweep.role") == "trial"
    ]
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.slow
def test_a_sweeps_dropout_trial_is_tagged_overfit_by_the_dropout_off_measure(
    tmp_path: Path, stores: Any, write_sweep: Any, cli: Any
) -> None:
    """Through ``nnsweep run``: 600 digits as a user's NPZ (264 train, 216 validation rows),
    2 x 256 units with dropout 0.5 for 8 epochs. The run carries the dropout-off curves, one
    point per epoch, and the tag ``nnsweep.fit=overfit`` read from them."""
    from nnsweep.names import FIT_REASON_TAG, FIT_TAG

    data = _digits()
    rows = np.random.default_rng(0).choice(len(data.y_train), 600, replace=False)
    np.savez(tmp_path / "digits.npz", x=data.x_train[rows], y=data.y_train[rows])
    sweep = write_sweep(
        name="dropout",
        trials=1,
        dataset={"name": None, "path": str(tmp_path / "digits.npz"), "validation": 0.45},
        train={"epochs": 8, "batch_size": 32},
        space={
            "n_layers": 2,
            "units": 256,
            "activation": "relu",
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "dropout": 0.5,
        },
    )
    result = cli("run", sweep, *stores.args, "--quiet", "--jobs", "1")
    assert result.code == 0, result.err
    client, run = _run_of_the_only_trial(stores)
    curves = {
        key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key),
                                      key=lambda m: m.step)]
        for key in ("train_eval_accuracy", "train_eval_loss", "accuracy", "val_accuracy")
    }  # fmt: skip
    assert all(len(v) == 8 for v in curves.values()), {k: len(v) for k, v in curves.items()}
    gap = np.array(curves["train_eval_accuracy"]) - np.array(curves["val_accuracy"])
    assert np.all(gap[-3:] > RULES.overfit_gap + 0.05), gap  # ~0.16 on two seeds
    keras_gap = np.array(curves["accuracy"]) - np.array(curves["val_accuracy"])
    assert np.min(keras_gap[-3:]) < RULES.overfit_gap, keras_gap  # dropout on: hidden
    assert run.data.tags[FIT_TAG] == "overfit", run.data.tags[FIT_REASON_TAG]
    assert "train_eval_accuracy (dropout off)" in run.data.tags[FIT_REASON_TAG]
    assert run.data.metrics["gap_accuracy"] == pytest.approx(gap[-1])


@pytest.mark.slow
def test_a_regression_sweep_gets_a_loss_rule_verdict(
    tmp_path: Path, stores: Any, write_sweep: Any, cli: Any
) -> None:
    """A regression trial (scikit-learn's diabetes table) is diagnosed by the loss rules."""
    import sklearn.datasets

    from nnsweep.names import FIT_REASON_TAG, FIT_TAG
    from nnsweep.track.tracker import fetch_history

    sklearn.datasets.load_diabetes(as_frame=True).frame.to_csv(tmp_path / "d.csv", index=False)
    sweep = write_sweep(
        name="reg",
        trials=1,
        dataset={"name": None, "path": str(tmp_path / "d.csv"), "target": "target"},
        train={"epochs": 3, "batch_size": 32},
        space={"n_layers": 1, "units": 16, "optimizer": "adam", "learning_rate": 1e-3},
    )
    result = cli("run", sweep, *stores.args, "--quiet", "--jobs", "1")
    assert result.code == 0, result.err
    client, run = _run_of_the_only_trial(stores)
    history = fetch_history(client, run.info.run_id)  # as report and export read it back
    assert set(history) == {
        "loss",
        "mae",
        "val_loss",
        "val_mae",
        *train_eval_keys(Task(REGRESSION)),
    }
    assert all(len(v) == 3 for v in history.values())
    expected = diagnose(history, RULES)
    assert expected is not None
    assert run.data.tags[FIT_TAG] == expected.fit
    assert run.data.tags[FIT_REASON_TAG] == expected.reason
    # 3 epochs of a 16-unit model from the mean predictor: far from fitting its training rows
    assert expected.fit == "underfit" and "underfit_r2" in expected.reason
    assert run.data.metrics["train_r2"] == pytest.approx(expected.train_r2)
    assert "gap_accuracy" not in run.data.metrics


def test_learning_curves_draw_the_dropout_off_train_curve() -> None:
    from nnsweep.train.plots import learning_curves

    history = {
        "loss": [0.9, 0.6, 0.5],
        "train_eval_loss": [0.35, 0.22, 0.17],
        "val_loss": [0.4, 0.33, 0.31],
        "accuracy": [0.75, 0.84, 0.86],
        "train_eval_accuracy": [0.9, 0.94, 0.95],
        "val_accuracy": [0.85, 0.86, 0.865],
    }
    fig = learning_curves(history, title="t")
    for ax, metric in zip(fig.axes, ("accuracy", "loss"), strict=True):
        lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
        assert lines == {
            metric: history[metric],
            f"train_eval_{metric}": history[f"train_eval_{metric}"],
            f"val_{metric}": history[f"val_{metric}"],
        }
