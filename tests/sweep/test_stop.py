"""The stop rule (``stop: converged``) on synthetic studies in a real Optuna storage, and on a
real tiny sweep: it fires on a flat objective, not on an improving one, and says why."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution

from nnsweep.names import BOUNDS_TAG, HISTORY_ATTR, STOP_KEY
from nnsweep.spec.config import parse_spec
from nnsweep.spec.stop import StopSpec
from nnsweep.sweep.stop import (
    IMPROVEMENT_METRIC,
    THRESHOLD_METRIC,
    StopRule,
    proportion_noise,
    stop_reason,
)
from tests.conftest import CliResult, Stores

DIST = {"learning_rate": FloatDistribution(1e-4, 1e-1, log=True)}


def _study(tmp_path: Path, values: list[float], direction: str = "maximize") -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.log"))
    )
    study = optuna.create_study(storage=storage, direction=direction)
    for i, value in enumerate(values):
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": 1e-3 * (1 + i % 7)}, distributions=DIST, value=value
            )
        )
    return study


def test_the_noise_is_the_wilson_standard_error_of_an_accuracy() -> None:
    # 0.95 on 400 rows: the binomial sqrt(p(1-p)/n) = 1.09 points, Wilson's at z=1 nearly so
    assert proportion_noise(0.95, 400) == pytest.approx(0.01094, abs=2e-5)
    assert proportion_noise(0.95, 400) == pytest.approx(math.sqrt(0.95 * 0.05 / 400), rel=0.01)
    assert proportion_noise(1.0, 400) > 0  # a perfect score still has noise
    assert proportion_noise(0.9, 4000) < proportion_noise(0.9, 400)


def test_the_rule_fires_on_a_flat_objective_and_says_why(tmp_path: Path) -> None:
    # improved by 0.003 over the last 10 trials, within ±1.1 points of 400-row noise
    values = [0.90, 0.93, 0.948, *[0.945 + 0.0003 * i for i in range(11)], 0.951]
    study = _study(tmp_path, values)
    logged: list[tuple[int, dict[str, float]]] = []
    rule = StopRule(
        StopSpec(patience=10),
        "val_accuracy",
        "maximize",
        400,
        log=lambda n, f: logged.append((n, f)),
    )
    rule(study, study.trials[-1])
    assert rule.stop
    assert rule.reason == (
        "stopped after 15 COMPLETE trials: the best val_accuracy improved by 0.30 points over "
        "the last 10, less than the 400-row validation noise of ±1.1"
    )
    number, figures = logged[-1]
    assert number == 14
    assert figures[IMPROVEMENT_METRIC] == pytest.approx(0.003)
    assert figures[THRESHOLD_METRIC] == pytest.approx(proportion_noise(0.951, 400))
    assert stop_reason(study) == rule.reason  # stored on the study, with its COMPLETE count
    assert study.user_attrs[STOP_KEY]["n_complete"] == 15


def test_the_rule_does_not_fire_on_a_steadily_improving_objective(tmp_path: Path) -> None:
    study = _study(tmp_path, [0.70 + 0.01 * i for i in range(11)])
    rule = StopRule(StopSpec(patience=10), "val_accuracy", "maximize", 400)
    for i in range(11, 25):  # +1 point a trial: +10 points over every window of 10
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": 1e-3}, distributions=DIST, value=0.70 + 0.01 * i
            )
        )
        assert not rule.check(study)
    assert rule.reason is None and stop_reason(study) is None
    decision = rule.decide(study)
    assert decision.improvement == pytest.approx(0.10)
    assert not decision.fires


def test_too_few_trials_never_fire_and_min_trials_holds_it_back(tmp_path: Path) -> None:
    flat = _study(tmp_path, [0.9] * 10)
    assert not StopRule(StopSpec(patience=10), "val_accuracy", "maximize", 400).check(flat)
    (tmp_path / "b").mkdir()
    flat = _study(tmp_path / "b", [0.9] * 15)
    assert not StopRule(
        StopSpec(patience=10, min_trials=16), "val_accuracy", "maximize", 400
    ).check(flat)
    assert StopRule(StopSpec(patience=10), "val_accuracy", "maximize", 400).check(flat)
    assert not StopRule(StopSpec(when="never"), "val_accuracy", "maximize", 400).check(flat)


def test_a_loss_is_judged_by_min_delta_or_one_percent_of_the_best(tmp_path: Path) -> None:
    values = [1.0, 0.6, 0.50, *[0.499 - 0.0001 * i for i in range(10)]]  # minimised
    study = _study(tmp_path, values, direction="minimize")
    rule = StopRule(StopSpec(patience=10), "val_mae", "minimize", 400)
    assert rule.check(study)
    assert "less than 1 % of the best (0.004" in str(rule.reason)
    strict = StopRule(StopSpec(patience=10, min_delta=0.001), "val_mae", "minimize", 400)
    assert not strict.check(study)  # improved by 0.0019 > 0.001


def test_every_worker_stops_on_the_shared_study_and_history_is_left_out(tmp_path: Path) -> None:
    study = _study(tmp_path, [0.5 + 0.02 * i for i in range(12)])
    for i in range(11):  # a warm start's history: flat, but never run here
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": 1e-3}, distributions=DIST, value=0.1,
                user_attrs={HISTORY_ATTR: f"old#{i}"},
            )
        )  # fmt: skip
    a = StopRule(StopSpec(patience=10), "val_accuracy", "maximize", 400)
    b = StopRule(StopSpec(patience=10), "val_accuracy", "maximize", 400)
    assert not a.check(study) and not b.check(study)
    for _ in range(10):  # flat from here: 10 trials that do not beat 0.72
        study.add_trial(
            optuna.trial.create_trial(params={"learning_rate": 1e-3}, distributions=DIST, value=0.7)
        )
    assert a.check(study) and b.check(study)  # two workers, one decision
    assert a.reason == b.reason and "after 22 COMPLETE trials" in str(a.reason)


def test_the_section_reads_as_shorthand_and_refuses_bad_values() -> None:
    base = "name: s\ndataset: mnist_5k\ntrials: 3\n"
    assert parse_spec(base + "stop: converged\n").stop == StopSpec()
    with pytest.raises(ValueError, match="stop.patience"):
        parse_spec(base + "stop: {patience: 1}\n")
    with pytest.raises(ValueError, match="min_trials must be > patience"):
        parse_spec(base + "stop: {patience: 5, min_trials: 5}\n")


@pytest.mark.slow
def test_a_sweep_stops_early_says_why_and_logs_the_figures(
    stores: Stores, write_sweep: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    from mlflow import MlflowClient

    # min_delta 0.5 (50 points): no improvement can count, so it stops after patience + 1
    sweep = write_sweep(trials=6, stop={"when": "converged", "patience": 2, "min_delta": 0.5})
    ran = cli("run", sweep, *stores.args, "--quiet", "--jobs", "1")
    assert ran.code == 0, ran.err
    why = "stopped after 3 COMPLETE trials: the best val_accuracy improved by"
    assert why in ran.err  # the progress line
    assert why in ran.out  # the final summary
    assert "less than min_delta 0.5" in ran.out
    client = MlflowClient(stores.tracking_uri)
    exp = client.get_experiment_by_name("tiny")
    parent = client.search_runs([exp.experiment_id], "tags.`nnsweep.role` = 'study'")[0]
    assert parent.data.tags[STOP_KEY].startswith(why)
    history = client.get_metric_history(parent.info.run_id, IMPROVEMENT_METRIC)
    assert [m.step for m in history] == [2]  # decided after trial #2, the first with a window
    assert client.get_metric_history(parent.info.run_id, THRESHOLD_METRIC)[0].value == 0.5
    assert "importance.learning_rate" in parent.data.metrics  # what mattered, logged
    assert parent.data.tags.get(BOUNDS_TAG)
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {
        "report/importances.png",
        "report/importances.csv",
        "report/what_we_learned.md",
    } <= files
