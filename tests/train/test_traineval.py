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
def test_dropout_hides_a_generalisation_gap_that_the_dropout_off_measure_shows() -> None:
    """Issue 13.3 on real training: 300 digits, 2 x 256 units, dropout 0.6, 12 epochs at 2e-3,
    judged at the best val_accuracy epoch (the weights ``reduce: best`` keeps; here the 12th).

    With dropout off the model errs on ~3 % of its training rows and ~17 % of the validation
    split: error_ratio 5.0 (limit 1) and a gap of ~0.15, so ``generalisation_gap``.
    Keras' own ``accuracy`` (dropout on, averaged over the epoch) errs on ~13 % of the same
    training rows, so read alone the validation error is only 1.4x it (error_ratio 0.37) and the
    same weights look ``good``: the error the issue describes. On keras seeds 0, 2, 3, 4 the
    verdicts split the same way (dropout-off error_ratio 3.8-5.8, Keras' 0.09-0.37); on seed 1
    the best epoch is the last and both histories read "still improving".
    """
    import keras

    from nnsweep.train.traineval import train_eval_callback

    data = _digits()
    rows = np.random.default_rng(5).choice(len(data.y_train), 300, replace=False)
    x, y = data.x_train[rows], data.y_train[rows]
    x_val, y_val = data.x_val[:300], data.y_val[:300]
    keras.utils.set_random_seed(0)
    hp = HyperParams(
        n_layers=2, units=(256, 256), dropout=0.6, learning_rate=2e-3, batch_size=32, epochs=12
    )
    model = build_model(hp, train_size=len(y), **data.model_kwargs())
    callback = train_eval_callback(data.task, x, y, len(y_val), seed=0)
    history = model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=12,
        batch_size=32,
        callbacks=[callback],
        verbose=0,
    ).history

    off, on = np.array(history["train_eval_accuracy"]), np.array(history["accuracy"])
    val = np.array(history["val_accuracy"])
    kept = int(np.argmax(val)) + 1  # the first best epoch, as the trial's weight keeper picks
    window = slice(kept - 3, kept)  # the 3 epochs the rules average
    assert np.all(off[window] - val[window] > RULES.overfit_gap + 0.08)  # clearly, not by a hair
    assert np.all(off[window] - on[window] > 0.04)  # dropout costs Keras' figure several points

    diag = diagnose(history, RULES, kept)
    assert diag is not None and diag.fit == "generalisation_gap", diag.reason
    assert diag.judged_epoch == kept and diag.rule.startswith("error_ratio")
    assert diag.figures.error_ratio is not None and diag.figures.error_ratio > 3 * RULES.error_ratio
    assert diag.dropout_off and "train_eval_accuracy (dropout off)" in diag.reason
    assert diag.gap == pytest.approx(float(np.mean(off[window] - val[window])))

    keras_only = {k: history[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    before = diagnose(keras_only, RULES, kept)
    assert before is not None and before.fit == "good", before.reason
    assert not before.dropout_off and "Keras' accuracy (dropout on)" in before.reason
    # the rule's own figure is what dropout hides: under its limit on Keras' dropout-on figure
    assert before.figures.error_ratio is not None
    assert before.figures.error_ratio < RULES.error_ratio / 2, before.figures


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
def test_a_sweeps_dropout_trial_is_tagged_generalisation_gap_by_the_dropout_off_measure(
    tmp_path: Path, stores: Any, write_sweep: Any, cli: Any
) -> None:
    """Through ``nnsweep run``: 600 digits as a user's NPZ (264 train, 216 validation rows),
    2 x 256 units with dropout 0.5 for 12 epochs. The run carries the dropout-off curves, one
    point per epoch, and the tag ``nnsweep.fit=generalisation_gap`` with the rule that decided
    it, read from them at the epoch whose weights the trial kept; at that same epoch Keras'
    dropout-on curve puts the rule's figure under its limit, and alone reads ``good``.

    Sweep seeds 1 (this test's), 2, 3: kept epochs 12, 11, 8; dropout-off gap 0.155-0.164 and
    error_ratio 7.7-33 (limit 1); Keras' error_ratio 0.24-0.60. At 8 epochs two of those
    seeds were still improving at their kept, last epoch (``underfit``).
    """
    from nnsweep.names import FIT_REASON_TAG, FIT_RULE_TAG, FIT_TAG
    from nnsweep.tasks import WEIGHTS_EPOCH_METRIC

    data = _digits()
    rows = np.random.default_rng(0).choice(len(data.y_train), 600, replace=False)
    np.savez(tmp_path / "digits.npz", x=data.x_train[rows], y=data.y_train[rows])
    sweep = write_sweep(
        name="dropout",
        trials=1,
        dataset={"name": None, "path": str(tmp_path / "digits.npz"), "validation": 0.45},
        train={"epochs": 12, "batch_size": 32},
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
    keys = ("train_eval_accuracy", "train_eval_loss", "accuracy", "loss", "val_accuracy")
    curves = {
        key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key),
                                      key=lambda m: m.step)]
        for key in (*keys, "val_loss")
    }  # fmt: skip
    assert all(len(v) == 12 for v in curves.values()), {k: len(v) for k, v in curves.items()}
    kept = int(run.data.metrics[WEIGHTS_EPOCH_METRIC])
    assert run.data.metrics["judged_epoch"] == kept >= 3
    window = slice(kept - 3, kept)  # the 3 epochs the rules average
    gap = np.array(curves["train_eval_accuracy"]) - np.array(curves["val_accuracy"])
    assert np.all(gap[window] > RULES.overfit_gap + 0.05), gap
    tags = run.data.tags
    assert tags[FIT_TAG] == "generalisation_gap", tags[FIT_REASON_TAG]
    assert tags[FIT_RULE_TAG].startswith("error_ratio")
    assert "train_eval_accuracy (dropout off)" in tags[FIT_REASON_TAG]
    assert run.data.metrics["gap_accuracy"] == pytest.approx(float(np.mean(gap[window])))
    keras_only = {k: curves[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    before = diagnose(keras_only, RULES, kept)
    assert before is not None and before.fit == "good", before.reason
    assert before.figures.error_ratio is not None
    assert before.figures.error_ratio < RULES.error_ratio, before.figures


@pytest.mark.slow
def test_a_regression_sweep_gets_a_loss_rule_verdict(
    tmp_path: Path, stores: Any, write_sweep: Any, cli: Any
) -> None:
    """A regression trial (scikit-learn's diabetes table, 5-fold cross-validation by default) is
    diagnosed by the loss rules on its fold-mean curves, at the epoch whose weights it kept:
    the run's tag, rule and reason are those of :func:`diagnose` on the curves read back, the
    loss-rule figures (``train_r2``, ``loss_ratio``, ``gap_baseline``) are logged and no
    accuracy figure is. 3 epochs of 16 units from the mean predictor are still improving at
    the last epoch: val_loss -3.2 % per epoch on this sweep seed, -4.5 % to -11.6 % on seeds
    2-4 (limit 2 %)."""
    import sklearn.datasets

    from nnsweep.names import FIT_REASON_TAG, FIT_RULE_TAG, FIT_TAG
    from nnsweep.tasks import WEIGHTS_EPOCH_METRIC
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
    metrics = run.data.metrics
    kept = int(metrics[WEIGHTS_EPOCH_METRIC])
    expected = diagnose(history, RULES, kept)
    assert expected is not None and metrics["judged_epoch"] == expected.judged_epoch == kept
    assert run.data.tags[FIT_TAG] == expected.fit
    assert run.data.tags[FIT_REASON_TAG] == expected.reason
    assert run.data.tags[FIT_RULE_TAG] == expected.rule
    assert expected.fit == "underfit" and expected.rule.startswith("still_improving")
    assert "val_loss" in expected.reason and "train_eval_loss" in expected.reason
    assert metrics["train_r2"] == pytest.approx(expected.figures.train_skill)
    assert metrics["loss_ratio"] == pytest.approx(expected.figures.loss_ratio)
    assert metrics["gap_baseline"] == pytest.approx(expected.figures.gap_baseline)
    assert "gap_accuracy" not in metrics


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
