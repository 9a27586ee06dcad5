"""The pruning gate: Optuna's own path on one objective; on two, the primary metric judged by
the study's pruner against the finished trials at least as small (a real SQLite study)."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nnsweep.study.objectives import ALSO_ATTR, PRIMARY_CURVE_ATTR
from nnsweep.train.prune import PruneGate

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _multi(tmp_path: Path, finished: list[tuple[float, float]]) -> optuna.Study:
    """A multi-objective SQLite study (accuracy up, params down) with a median pruner that may
    fire from the first step, holding COMPLETE trials of (accuracy, params)."""
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        directions=["maximize", "minimize"],
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["val_accuracy", "params"])
    for accuracy, params in finished:
        study.add_trial(
            create_trial(
                values=[accuracy, params],
                user_attrs={ALSO_ATTR: params, PRIMARY_CURVE_ATTR: {"1": accuracy, "2": accuracy}},
            )
        )
    return study


def test_a_trial_behind_the_median_of_smaller_trials_is_pruned(tmp_path: Path) -> None:
    study = _multi(tmp_path, [(0.90, 1_000), (0.92, 2_000), (0.30, 50_000)])
    trial = study.ask()
    gate = PruneGate(trial, also=5_000.0)  # peers: the two smaller trials, median 0.91
    assert gate.report(0.60, step=1) is True
    assert gate.peers == 2
    assert "against the 2 COMPLETE trial(s) at least as small (params)" in gate.describe(
        "val_accuracy", "params"
    )
    stored = study.trials[trial.number].user_attrs[PRIMARY_CURVE_ATTR]
    assert stored == {"1": 0.60}  # the curve is on the trial, as Optuna would hold it
    study.tell(trial, state=TrialState.PRUNED)  # told PRUNED, as a sweep does
    assert study.trials[trial.number].state == TrialState.PRUNED


def test_a_trial_ahead_of_the_median_goes_on(tmp_path: Path) -> None:
    study = _multi(tmp_path, [(0.90, 1_000), (0.92, 2_000)])
    gate = PruneGate(study.ask(), also=5_000.0)
    assert gate.report(0.95, step=1) is False and gate.peers == 2


def test_a_trial_smaller_than_every_finished_one_is_never_pruned(tmp_path: Path) -> None:
    # far behind the big trials, and behind the median of every trial: no peer, no verdict
    study = _multi(tmp_path, [(0.90, 1_000), (0.92, 2_000), (0.95, 40_000)])
    gate = PruneGate(study.ask(), also=500.0)
    assert [gate.report(0.10, step=s) for s in (1, 2)] == [False, False]
    assert gate.peers == 0


def test_bigger_trials_do_not_count_as_peers(tmp_path: Path) -> None:
    # the same poor curve as the pruned trial above, but every finished trial is bigger
    study = _multi(tmp_path, [(0.90, 10_000), (0.92, 20_000)])
    gate = PruneGate(study.ask(), also=5_000.0)
    assert gate.report(0.60, step=1) is False and gate.peers == 0


def test_history_and_running_trials_are_not_peers(tmp_path: Path) -> None:
    from nnsweep.names import HISTORY_ATTR

    study = _multi(tmp_path, [])
    study.add_trial(
        create_trial(
            values=[0.99, 100],
            user_attrs={ALSO_ATTR: 100, HISTORY_ATTR: "old#0", PRIMARY_CURVE_ATTR: {"1": 0.99}},
        )
    )
    other = study.ask()
    other.set_user_attr(ALSO_ATTR, 100.0)
    gate = PruneGate(study.ask(), also=5_000.0)
    assert gate.report(0.10, step=1) is False and gate.peers == 0


@pytest.mark.parametrize(("value", "pruned"), [(0.2, True), (0.95, False)])
def test_single_objective_is_optunas_own_path(tmp_path: Path, value: float, pruned: bool) -> None:
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    study.add_trial(create_trial(value=0.9, intermediate_values={1: 0.9}))
    trial = study.ask()
    gate = PruneGate(trial)
    assert gate.multi is False
    assert gate.report(value, step=1) is pruned
    assert study.trials[trial.number].intermediate_values == {1: value}  # trial.report
    assert PRIMARY_CURVE_ATTR not in study.trials[trial.number].user_attrs
    assert gate.describe("val_accuracy", None) == ""
