"""One trial: sampling, the objective value, and trials that fail alone."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from nnsweep.spec.config import parse_spec
from nnsweep.study.storage import create_or_resume
from nnsweep.train.objective import (
    failure_reason,
    pruned_reason,
    reduce_history,
    sample_params,
)
from nnsweep.train.result import TrialFailure
from tests.conftest import CliResult, Stores

HISTORY = {"val_accuracy": [0.5, 0.9, 0.8], "val_loss": [1.0, 0.3, 0.4]}


@pytest.mark.parametrize(
    ("metric", "direction", "how", "expected"),
    [
        ("val_accuracy", "maximize", "best", 0.9),
        ("val_accuracy", "maximize", "last", 0.8),
        ("val_loss", "minimize", "best", 0.3),
        ("val_loss", "minimize", "last", 0.4),
    ],
)
def test_reduce_history(metric: str, direction: str, how: str, expected: float) -> None:
    assert reduce_history(HISTORY, metric, direction, how) == expected


def test_reduce_history_skips_nan_and_fails_on_nothing() -> None:
    assert reduce_history({"val_loss": [math.nan, 0.5]}, "val_loss", "minimize", "best") == 0.5
    with pytest.raises(TrialFailure, match="no finite val_loss"):
        reduce_history({"val_loss": [math.nan]}, "val_loss", "minimize", "best")


@pytest.mark.parametrize(
    ("pruner", "name"),
    [
        (optuna.pruners.MedianPruner(), "median"),
        (optuna.pruners.SuccessiveHalvingPruner(), "successive_halving"),
        (optuna.pruners.HyperbandPruner(), "hyperband"),
    ],
)
def test_pruned_reason_names_the_epoch_and_the_pruner(
    pruner: optuna.pruners.BasePruner, name: str
) -> None:
    assert pruned_reason(3, pruner) == f"pruned at epoch 3 by the {name} pruner"


def test_failure_reason_is_one_readable_line() -> None:
    oom = RuntimeError(
        "{{function_node __wrapped__X_device_/job:localhost}} OOM when allocating tensor with "
        "shape[784,3000000000] and type float\nmore lines"
    )
    assert failure_reason(oom) == (
        "out of memory allocating a tensor of shape [784,3000000000]; narrow space.units or "
        "the batch size"
    )
    assert failure_reason(ValueError("bad\nsecond line")) == "ValueError: bad"


def test_sample_params_units_per_layer() -> None:
    spec = parse_spec(
        "name: s\ndataset: mnist_5k\ntrials: 1\n"
        "space: {n_layers: 3, units: [8, 16], learning_rate: {low: 0.001, high: 0.1, log: true}}"
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    hp = sample_params(study.ask(), spec)
    assert hp.n_layers == 3 and len(hp.units) == 3 and set(hp.units) <= {8, 16}
    assert 0.001 <= hp.learning_rate <= 0.1 and hp.epochs == 10 and hp.batch_size == 128


def _enqueue(stores: Stores, sweep: Path, *points: dict) -> None:
    from nnsweep.spec.config import load_spec

    study = create_or_resume(load_spec(sweep), stores.storage, load_spec(sweep).name)
    for params in points:
        study.enqueue_trial(params)


# An out-of-memory trial can no longer be asked for: the sweep file caps units and the model's
# size (nnsweep.limits); its one-line reason is checked on TensorFlow's message above.
FAILING = [
    (
        "nan",
        {"space": {"optimizer": "sgd", "activation": "linear", "learning_rate": [1e3, 0.05]}},
        [{"learning_rate": 1e3}, {"learning_rate": 0.05}],
        "loss became NaN/inf at epoch 1",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "changes", "points", "reason"), FAILING, ids=[c[0] for c in FAILING]
)
def test_a_failing_trial_fails_alone(
    stores: Stores,
    write_sweep: Callable[..., Path],
    cli: Callable[..., CliResult],
    case: str,
    changes: dict,
    points: list[dict],
    reason: str,
) -> None:
    sweep = write_sweep(name=f"fail_{case}", trials=1, **changes)
    _enqueue(stores, sweep, *points)  # the failing point first, then a good one
    result = cli("run", sweep, *stores.args, "--quiet")
    assert result.code == 0, result.err
    assert "1 COMPLETE, 1 FAIL" in result.out
    assert reason in result.err  # the progress line of the failed trial

    client = MlflowClient(stores.tracking_uri)
    exp = client.get_experiment_by_name(f"fail_{case}")
    runs = {
        r.data.tags["nnsweep.trial"]: r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("nnsweep.role") == "trial"
    }
    assert runs["0"].info.status == "FAILED"
    assert runs["0"].data.tags["nnsweep.state"] == "FAIL"
    assert reason in runs["0"].data.tags["nnsweep.fail_reason"]
    assert (
        runs["1"].info.status == "FINISHED" and runs["1"].data.tags["nnsweep.state"] == "COMPLETE"
    )


@pytest.mark.slow
def test_a_sweep_where_every_trial_fails_exits_1_with_a_summary(
    stores: Stores, write_sweep: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    sweep = write_sweep(
        name="allfail",
        trials=3,
        train={"epochs": 1},
        space={
            "n_layers": 1,
            "units": 8,
            "activation": "linear",
            "optimizer": "sgd",
            "learning_rate": 1e3,
        },
    )
    result = cli("run", sweep, *stores.args, "--quiet")
    assert result.code == 1
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("nnsweep: error: all 5 trials of this run failed")
    assert "loss became NaN/inf" in last


# -- one pass per trial ------------------------------------------------------------------------
def _count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[object]:
    """Wrap ``module.name`` wherever an nnsweep module holds it; returns the list of calls."""
    import sys

    original = getattr(module, name)
    calls: list[object] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return original(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("nnsweep") and (
            getattr(mod, name, None) is original
        ):
            monkeypatch.setattr(mod, name, counting)
    return calls


@pytest.mark.slow
def test_a_trial_computes_its_value_and_diagnosis_once(
    stores: Stores,
    write_sweep: Callable[..., Path],
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The result travels forward: the steps and the model logger read it, never recompute."""
    import nnsweep.cli.main
    import nnsweep.data.load
    import nnsweep.sweep.run  # noqa: F401
    import nnsweep.train.diagnosis
    import nnsweep.train.modellog
    import nnsweep.train.objective
    import nnsweep.train.steps

    # the data is read from its source once per process: every later ask hits the cache
    nnsweep.data.load._load.cache_clear()
    loads = _count_calls(monkeypatch, nnsweep.data.load, "_digits")
    values = _count_calls(monkeypatch, nnsweep.train.objective, "reduce_history")
    diagnoses = _count_calls(monkeypatch, nnsweep.train.diagnosis, "diagnose")
    sweep = write_sweep(name="once", trials=2, log_models="all")
    result = cli("run", sweep, *stores.args, "--quiet")
    assert result.code == 0, result.err

    study = optuna.load_study(study_name="once", storage=stores.storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    assert len(loads) == 1
    assert len(values) == 2
    assert len(diagnoses) == 2
    client = MlflowClient(stores.tracking_uri)
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["nnsweep.mlflow_run_id"])
        assert "nnsweep.fit" in run.data.tags and "nnsweep.model_uri" in run.data.tags


# -- the weights that scored -------------------------------------------------------------------
# Adam at 0.02 on 32 units, batch 32: val_accuracy peaks at epoch 4 (seed 1), then wobbles below.
BOUNCY = {
    "trials": 1,
    "train": {"epochs": 8, "batch_size": 32},
    "space": {"n_layers": 1, "units": 32, "activation": "relu", "learning_rate": 0.02},
}


def _val_accuracy(model: object, sweep: Path) -> float:
    """The model's own accuracy on the sweep's validation split (dropout off)."""
    import numpy as np

    from nnsweep.data.load import sweep_dataset
    from nnsweep.spec.config import load_spec

    data = sweep_dataset(load_spec(sweep))
    probs = model.predict(data.x_val, batch_size=256, verbose=0)  # type: ignore[attr-defined]
    return float((np.argmax(probs, axis=1) == data.y_val).mean())


def _only_trial(stores: Stores, name: str) -> tuple[optuna.trial.FrozenTrial, object, dict]:
    from nnsweep.track.tracker import fetch_history

    (trial,) = optuna.load_study(study_name=name, storage=stores.storage).trials
    client = MlflowClient(stores.tracking_uri)
    run = client.get_run(trial.user_attrs["nnsweep.mlflow_run_id"])
    return trial, run, fetch_history(client, run.info.run_id)


@pytest.mark.slow
def test_the_logged_model_holds_the_best_epochs_weights(
    stores: Stores,
    write_sweep: Callable[..., Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
) -> None:
    import keras

    from nnsweep.track.models import download_model
    from nnsweep.train.modellog import MLFLOW_KERAS_FILE

    sweep = write_sweep(name="bouncy", **BOUNCY)
    assert cli("run", sweep, *stores.args, "--quiet").code == 0
    trial, run, history = _only_trial(stores, "bouncy")
    curve = history["val_accuracy"]
    best_epoch = curve.index(max(curve)) + 1
    assert curve[-1] < max(curve), f"the test needs a last epoch worse than the best: {curve}"

    assert trial.value == max(curve)
    assert run.data.metrics["weights_epoch"] == best_epoch < len(curve)
    assert run.data.metrics["weights_val_accuracy"] == trial.value
    local = download_model(run.data.tags["nnsweep.model_uri"], tmp_path, stores.tracking_uri)
    model = keras.saving.load_model(local / MLFLOW_KERAS_FILE)
    assert _val_accuracy(model, sweep) == pytest.approx(max(curve), abs=1e-6)


@pytest.mark.slow
def test_export_with_early_stopping_exports_the_restored_epoch(
    stores: Stores,
    write_sweep: Callable[..., Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
) -> None:
    import json

    import keras

    train = {**BOUNCY["train"], "epochs": 15, "early_stopping": {"patience": 2}}
    sweep = write_sweep(name="stopped", **{**BOUNCY, "train": train})
    assert cli("run", sweep, *stores.args, "--quiet").code == 0
    trial, _, history = _only_trial(stores, "stopped")
    curve = history["val_accuracy"]
    best_epoch = curve.index(max(curve)) + 1
    assert best_epoch + 2 == len(curve) < 15  # stopped after 2 epochs without a gain

    out = tmp_path / "export"
    assert cli("export", "stopped", "--out", out, *stores.args).code == 0
    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    assert card["weights"]["epoch"] == best_epoch
    assert card["weights"]["val_accuracy"] == card["objective"]["value"] == trial.value
    assert card["validation"]["epochs_trained"] == len(curve)
    model = keras.saving.load_model(out / "model.keras")
    assert _val_accuracy(model, sweep) == pytest.approx(trial.value, abs=1e-6)
    page = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"(epoch {best_epoch}, val_accuracy {trial.value:.4f})" in page
