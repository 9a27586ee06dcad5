"""The progress line of a running sweep: the primary best, and on a multi-objective study each
trial's second value and the front's size (a real in-memory study, no training)."""

from __future__ import annotations

import warnings

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nnsweep.study.objectives import ALSO_ATTR
from nnsweep.sweep.progress import SweepProgress


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("trial")]


def test_a_multi_objective_line_has_the_second_value_and_the_front(
    capsys: pytest.CaptureFixture[str],
) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["val_accuracy", "params"])
    progress = SweepProgress(quiet=True, metric="val_accuracy")
    progress.on_start(study, 0, 3)
    finished = [
        create_trial(values=[0.90, 50_000.0], user_attrs={ALSO_ATTR: 50_000.0}),
        create_trial(values=[0.80, 2_000.0], user_attrs={ALSO_ATTR: 2_000.0}),
        create_trial(state=TrialState.PRUNED, user_attrs={ALSO_ATTR: 60_000.0}),
        create_trial(values=[0.70, 1.2345], user_attrs={ALSO_ATTR: 1.2345}),  # latency, ms
    ]
    for trial in finished:
        study.add_trial(trial)
        progress(study, study.trials[-1])
    lines = _lines(capsys)
    assert (
        "val_accuracy=0.9000 params=50,000" in lines[0] and "best 0.9000 (#0) front 1" in lines[0]
    )
    assert "val_accuracy=0.8000 params=2,000" in lines[1] and "best 0.9000 (#0) front 2" in lines[1]
    assert "PRUNED" in lines[2] and "params=60,000" in lines[2] and "front 2" in lines[2]
    assert "params=1.23 " in lines[3] and "front 3" in lines[3]


def test_a_single_objective_line_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study(direction="minimize")
    progress = SweepProgress(quiet=True, metric="val_mae")
    progress.on_start(study, 0, 2)
    for value in (0.5, 0.3):
        study.add_trial(create_trial(value=value))
        progress(study, study.trials[-1])
    lines = _lines(capsys)
    assert "val_mae=0.3000" in lines[1] and lines[1].endswith("best 0.3000 (#1)")
