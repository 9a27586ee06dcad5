"""Multi-objective sweeps (``objective.also``), run end to end: real Keras fits on the bundled
digits, a real SQLite Optuna study and a real MLflow store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from nnsweep.names import FAIL_REASON_KEY, FIT_REASON_TAG, RUN_ID_ATTR
from nnsweep.study.objectives import ALSO_ATTR, PRIMARY_CURVE_ATTR
from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]


def _run(cli: Cli, stores: Stores, sweep: Path, *extra: str) -> CliResult:
    result = cli("run", sweep, *stores.args, "--jobs", "1", "--quiet", *extra)
    assert result.code == 0, result.err
    return result


def _study(stores: Stores, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=stores.storage)


@pytest.mark.slow
def test_params_sweep_returns_a_front_of_non_dominated_trials(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    # a grid over a 3-unit and a 64-unit layer: the narrow model is ~20x smaller and far less
    # accurate after 2 epochs, so neither dominates the other (reliable, not a lucky draw)
    sweep = write_sweep(
        "mo",
        trials=2,
        sampler="grid",
        objective={"metric": "val_accuracy", "also": "params"},
        space={
            "n_layers": 1, "units": [3, 64], "activation": "relu",
            "learning_rate": 0.01, "dropout": 0.0,
        },
    )  # fmt: skip
    result = _run(cli, stores, sweep)
    study = _study(stores, "mo")
    assert study.metric_names == ["val_accuracy", "params"]
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 2
    front = study.best_trials  # Optuna's own Pareto front
    assert len(front) >= 2
    for a in front:  # checked by hand: no trial of the front is dominated by any other
        for b in done:
            assert not (
                b.values[0] >= a.values[0]
                and b.values[1] <= a.values[1]
                and (b.values[0] > a.values[0] or b.values[1] < a.values[1])
            )
    client = MlflowClient(stores.tracking_uri)
    for t in done:
        expected = 784 * t.params["units_0"] + t.params["units_0"] + 10 * t.params["units_0"] + 10
        assert t.values[1] == t.user_attrs[ALSO_ATTR] == expected  # trainable params
        metrics = client.get_run(t.user_attrs[RUN_ID_ATTR]).data.metrics
        assert metrics["params"] == expected
        assert set(t.user_attrs[PRIMARY_CURVE_ATTR]) == {"1", "2"}  # one value per epoch
    assert "best trial #" in result.out  # the best primary value, as for one objective
    assert "Pareto front (val_accuracy vs params): 2 trial(s)" in result.out
    parent = [
        r
        for r in client.search_runs([client.get_experiment_by_name("mo").experiment_id])
        if r.data.tags.get("mlflow.parentRunId") is None
    ]
    assert parent and parent[0].data.params["objective_also"] == "params"


@pytest.mark.slow
def test_pruning_fires_on_the_primary_metric(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    """Three resumes of one study: a good trial, then a hopeless one of the same size (pruned
    by the median of the trials at least as small), then a hopeless smaller one (no trial is
    as small: never pruned, it completes and joins the front's small end)."""
    base = {
        "trials_count": "all",
        "sampler": "random",
        "objective": {"metric": "val_accuracy", "also": "params"},
        "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        "train": {"epochs": 3, "batch_size": 128},
    }
    # one dimension varies (a space with none runs one trial), the size not with it
    space = {"n_layers": 1, "activation": ["relu", "elu"], "dropout": 0.0}
    runs = [(1, 32, 0.01), (2, 32, 1e-7), (3, 4, 1e-7)]  # (trials, units, learning rate)
    for trials, units, lr in runs:  # a changed space keeps trials comparable on resume
        sweep = write_sweep(
            "prune", **base, trials=trials, space={**space, "units": units, "learning_rate": lr}
        )
        _run(cli, stores, sweep)
    good, bad, small = _study(stores, "prune").get_trials()
    assert good.state == TrialState.COMPLETE and good.values[0] > 0.5
    assert bad.state == TrialState.PRUNED  # the same size as `good` and far behind it
    assert bad.user_attrs[ALSO_ATTR] == good.values[1]  # its size is known although pruned
    tags = MlflowClient(stores.tracking_uri).get_run(bad.user_attrs[RUN_ID_ATTR]).data.tags
    assert FAIL_REASON_KEY not in bad.user_attrs
    text = tags[FIT_REASON_TAG]
    assert text.startswith("pruned at epoch 1 by the median pruner")
    assert "judged on val_accuracy against the 1 COMPLETE trial(s) at least as small" in text
    assert small.state == TrialState.COMPLETE and small.values[0] < good.values[0]
    assert small.values[1] < good.values[1]
    assert {t.number for t in _study(stores, "prune").best_trials} == {good.number, small.number}


@pytest.mark.slow
def test_latency_objective_under_cross_validation(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    sweep = write_sweep(
        "lat",
        trials=1,
        dataset={"name": "mnist_5k", "validation": {"folds": 2}},
        objective={"metric": "val_accuracy", "also": "latency"},
        train={"epochs": 1, "batch_size": 128},
    )
    _run(cli, stores, sweep)
    study = _study(stores, "lat")
    assert study.metric_names == ["val_accuracy", "latency_ms"]
    (trial,) = study.get_trials(states=(TrialState.COMPLETE,))
    ms = trial.values[1]
    assert 0.0 < ms < 1000.0 and trial.user_attrs[ALSO_ATTR] == ms  # milliseconds, one row
    metrics = MlflowClient(stores.tracking_uri).get_run(trial.user_attrs[RUN_ID_ATTR]).data.metrics
    assert metrics["latency_ms"] == ms
    # the gate was fed the fold means at steps k * E + epoch, as cv.py reports them
    assert set(trial.user_attrs[PRIMARY_CURVE_ATTR]) == {"1", "2"}
