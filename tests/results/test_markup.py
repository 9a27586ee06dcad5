"""User text printed through Rich (study names, param values, failure reasons) stays text:
``[bold red]x[/]`` or ``[link=…]`` is shown as written, never styled or turned into a link.
Also ``compare --json``. Hand-made studies (real Optuna and MLflow stores), no training."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from nnsweep.names import EXPERIMENT_ATTR, FAIL_REASON_KEY, OBJECTIVE_ATTR, PARAMS_ATTR, RUN_ID_ATTR
from nnsweep.sweep.progress import SweepProgress
from nnsweep.track.tracker import Tracker
from tests.conftest import CliResult, Stores

HOSTILE_NAME = "[bold red]x[/]"
HOSTILE_PARAM = "[link=http://evil.example]y[/link]"
HOSTILE_REASON = "ValueError: [link=http://evil.example]click[/link] [bold]now"
DISTRIBUTIONS = {
    "activation": CategoricalDistribution([HOSTILE_PARAM, "relu"]),
    "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
}


def _made_study(stores: Stores, name: str = HOSTILE_NAME) -> optuna.Study:
    """Three trials (two COMPLETE, one FAIL), each with its MLflow run, under ``name``."""
    tracker = Tracker(stores.tracking_uri, "markup")
    study = optuna.create_study(study_name=name, storage=stores.storage, direction="maximize")
    study.set_user_attr(EXPERIMENT_ATTR, tracker.experiment_id)
    study.set_user_attr(OBJECTIVE_ATTR, "val_accuracy")
    parent = tracker.start_parent(name, tags={}, params={"val_size": 300})
    rows = [
        (TrialState.COMPLETE, 0.91, HOSTILE_PARAM, 1e-3),
        (TrialState.COMPLETE, 0.95, "relu", 3e-3),
        (TrialState.FAIL, None, "relu", 5e-2),
    ]
    for number, (state, value, activation, lr) in enumerate(rows):
        params = {"activation": activation, "learning_rate": lr}
        run_id = tracker.start_trial(parent, name, number, params)
        if value is not None:
            tracker.log_metrics(run_id, {"best_val_accuracy": value, "epochs_run": 2})
        tracker.end_trial(run_id, state.name, HOSTILE_REASON if value is None else None)
        attrs = {RUN_ID_ATTR: run_id, PARAMS_ATTR: params}
        if value is None:
            attrs[FAIL_REASON_KEY] = HOSTILE_REASON
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=params,
                distributions=DISTRIBUTIONS,
                user_attrs=attrs,
            )
        )
    return study


def test_status_shows_a_study_name_with_markup_as_written(
    stores: Stores, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # Rich's width: one line per row
    _made_study(stores)
    result = cli("status", *stores.args)
    assert result.code == 0, result.err
    assert f"│ {HOSTILE_NAME} " in result.out


def test_compare_shows_names_and_param_values_as_written(
    stores: Stores, cli: Callable[..., CliResult]
) -> None:
    _made_study(stores)
    result = cli("compare", HOSTILE_NAME, *stores.args)
    assert result.code == 0, result.err
    assert f"study {HOSTILE_NAME}: 3 of 3 trials" in result.out
    flat = "".join(result.out.split())  # the table may fold a long cell over lines
    assert "".join(f"activation={HOSTILE_PARAM}".split()) in flat


def test_compare_json(stores: Stores, cli: Callable[..., CliResult]) -> None:
    _made_study(stores, name="plain")
    result = cli("compare", "plain", "--json", *stores.args)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert {k: data[k] for k in ("study", "direction", "sort", "reverse", "n_trials")} == {
        "study": "plain",
        "direction": "maximize",
        "sort": "value",
        "reverse": False,
        "n_trials": 3,
    }
    trials = data["trials"]
    assert [t["trial"] for t in trials] == [1, 0, 2]  # best first, the FAIL trial last
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert trials[0]["value"] == pytest.approx(0.95) and trials[2]["value"] is None
    assert trials[1]["params"] == {"activation": HOSTILE_PARAM, "learning_rate": 1e-3}
    assert trials[0]["best_val_accuracy"] == pytest.approx(0.95)
    assert all(t["run_id"] for t in trials)
    assert sum(data["fit_counts"].values()) == 3
    # strict JSON: no NaN / Infinity tokens anywhere
    json.loads(result.out, parse_constant=lambda token: pytest.fail(f"non-JSON {token}"))

    top = json.loads(
        cli("compare", "plain", "--json", "--top", "1", "--sort", "trial", *stores.args).out
    )
    assert [t["trial"] for t in top["trials"]] == [0] and top["n_trials"] == 3


def test_live_progress_prints_names_and_reasons_as_written(stores: Stores) -> None:
    study = _made_study(stores)
    progress = SweepProgress(metric="val_accuracy")
    out = io.StringIO()
    # a terminal, so the live bar (whose task is named after the study) is drawn too
    progress.console = Console(file=out, force_terminal=True, width=200, color_system=None)
    progress.on_start(study, done=2, target=5)
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    progress(study, failed)
    progress.stop()
    text = out.getvalue()
    assert f"resuming study {HOSTILE_NAME}" in text
    assert HOSTILE_REASON in text
