"""Results for every task: report, compare (text and --json), status, best and the UI link rank
trials by the value each was scored with, in the objective's direction, with the task's columns.

The hand-made studies are real Optuna storages and real MLflow stores whose runs hold curves
chosen so that every plausible wrong key (the last epoch, accuracy instead of AUC, the wrong
direction) gives another order than the right one; their diagnosis is the real
:func:`nnsweep.train.diagnosis.diagnose` of those curves. The slow tests run real sweeps on
scikit-learn's public tables written to CSV.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from nnsweep.names import (
    COMPARABLE_ATTR,
    EXPERIMENT_ATTR,
    FIT_RULE_TAG,
    FIT_TAG,
    OBJECTIVE_ATTR,
    SPEC_ATTR,
)
from nnsweep.results.report import (
    OVERLAY_PNG,
    TABLE_CSV,
    TABLE_MD,
    display_frame,
    overlay_name,
    sort_trials,
    write_report,
)
from nnsweep.results.trials import (
    BINARY_COLUMNS,
    REGRESSION_COLUMNS,
    Scoring,
    scored_frame,
    scoring_of,
    trials_frame,
)
from nnsweep.spec.config import DiagnosisSpec
from nnsweep.tasks import is_digit_study, objective_key, task_of
from nnsweep.track.tracker import Tracker
from nnsweep.train.diagnosis import diagnose
from nnsweep.ui.server import find_experiment, runs_url
from tests.conftest import CliResult, Stores

VAL_SIZE = 60
HEAD = ["trial", "state", "value", "params.units_0"]
TAIL = ["val_size", "fit", "fit_rule", "epochs", "duration_s", "run_id"]
DISPLAY_TAIL = ["fit", "fit by", "duration", "run id"]

# number: (state, curves). Regression, objective best val_mae: values 3.0, 3.5, 3.2, so the
# order is 0, 2, 1; by the last epoch's val_mae it would be 2, 1, 0, and descending 1, 2, 0.
REGRESSION = {
    0: (TrialState.COMPLETE, {"val_mae": [5.0, 3.0, 4.0], "mae": [5.5, 3.0, 2.0]}),
    1: (TrialState.COMPLETE, {"val_mae": [6.0, 3.5, 3.6], "mae": [6.0, 3.4, 3.3]}),
    2: (TrialState.COMPLETE, {"val_mae": [4.5, 3.2, 3.3], "mae": [4.4, 3.1, 3.0]}),
    3: (TrialState.PRUNED, {"val_mae": [9.0, 8.0], "mae": [9.5, 8.5]}),
    4: (TrialState.FAIL, {}),
}
# Binary, objective best val_auc: values 0.95, 0.91, 0.93 → 0, 2, 1; by accuracy (best or
# final) 1, 0, 2; by the last epoch's val_auc 2, 1, 0.
BINARY = {
    0: (TrialState.COMPLETE, {"val_auc": [0.80, 0.95, 0.90], "val_accuracy": [0.70, 0.80, 0.85]}),
    1: (TrialState.COMPLETE, {"val_auc": [0.85, 0.90, 0.91], "val_accuracy": [0.75, 0.90, 0.92]}),
    2: (TrialState.COMPLETE, {"val_auc": [0.70, 0.93, 0.92], "val_accuracy": [0.60, 0.70, 0.80]}),
}


def _curves(kind: str, given: dict[str, list[float]]) -> dict[str, list[float]]:
    """A full history for ``kind`` from the curves ``given``: losses (and the training side)
    derived from them, so the real diagnosis has every series it reads."""
    history = {k: list(v) for k, v in given.items()}
    if kind == "regression":
        history["val_loss"] = [v * v for v in given["val_mae"]]
        history["loss"] = [v * v for v in given["mae"]]
        history["train_eval_mae"] = [v * 0.9 for v in given["mae"]]
        history["train_eval_loss"] = [(v * 0.9) ** 2 for v in given["mae"]]
        history["train_eval_baseline_loss"] = [100.0] * len(given["mae"])
    else:
        history["val_loss"] = [1.2 - v for v in given["val_accuracy"]]
        history["accuracy"] = [v + 0.03 for v in given["val_accuracy"]]
        history["loss"] = [1.1 - v for v in given["val_accuracy"]]
        history["auc"] = [min(v + 0.02, 1.0) for v in given["val_auc"]]
    return history


def _made(
    stores: Stores, name: str, kind: str, metric: str, direction: str, trials: dict[int, Any]
) -> optuna.Study:
    """A study as a sweep of ``kind`` leaves it: Optuna trials (values reduced by the best
    epoch) and MLflow runs with curves, the real diagnosis, the objective metric and tags."""
    tracker = Tracker(stores.tracking_uri, name)
    study = optuna.create_study(study_name=name, storage=stores.storage, direction=direction)
    study.set_user_attr(EXPERIMENT_ATTR, tracker.experiment_id)
    study.set_user_attr(OBJECTIVE_ATTR, metric)
    study.set_user_attr(SPEC_ATTR, {"dataset": {"path": f"/data/{name}.csv", "target": "y"}})
    settings = {"dataset.task_kind": kind, "objective.metric": metric, "objective.reduce": "best"}
    study.set_user_attr(COMPARABLE_ATTR, settings)
    params = {"val_size": VAL_SIZE, "objective_metric": metric, "direction": direction}
    parent = tracker.start_parent(name, tags={}, params=params)
    pick = max if direction == "maximize" else min
    for number, (state, given) in trials.items():
        units = 8 * (number + 1)
        run_id = tracker.start_trial(parent, name, number, {"units_0": units})
        history = _curves(kind, given) if given else {}
        for epoch in range(len(next(iter(history.values()), []))):
            tracker.log_metrics(run_id, {k: v[epoch] for k, v in history.items()}, epoch + 1)
        value = pick(history[metric]) if state == TrialState.COMPLETE else None
        if value is not None:
            tracker.log_metrics(run_id, {objective_key(metric): value})
        diag = diagnose(history, DiagnosisSpec()) if history else None
        if diag is not None:
            tracker.log_metrics(run_id, {**diag.metrics(), "epochs_run": len(history["loss"])})
            tracker.set_tags(run_id, {FIT_TAG: diag.fit, FIT_RULE_TAG: diag.rule})
        tracker.end_trial(run_id, state.name)
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params={"units_0": units},
                distributions={"units_0": IntDistribution(8, 64)},
                user_attrs={"nnsweep.mlflow_run_id": run_id, "nnsweep.params": {"units_0": units}},
            )
        )
    return study


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Stores, optuna.Study, optuna.Study]:
    root = tmp_path_factory.mktemp("tasks")
    stores = Stores(root, f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")
    reg = _made(stores, "houses", "regression", "val_mae", "minimize", REGRESSION)
    binary = _made(stores, "tumours", "binary", "val_auc", "maximize", BINARY)
    return stores, reg, binary


def _client(stores: Stores) -> MlflowClient:
    return MlflowClient(stores.tracking_uri)


# -- the trials frame and its order ----------------------------------------------------------
def test_regression_frame_has_loss_and_mae_columns_and_no_accuracy(made: Any) -> None:
    stores, study, _ = made
    scoring, frame = scored_frame(study, _client(stores))
    assert scoring == Scoring("regression", "val_mae", "best", "minimize", "rows")
    assert frame.columns.tolist() == [*HEAD, *REGRESSION_COLUMNS, *TAIL]
    assert not [c for c in frame.columns if "acc" in c or "auc" in c]
    rows = frame.set_index("trial")
    assert rows["value"].iloc[:3].tolist() == [3.0, 3.5, 3.2]  # the best epoch's val_mae
    assert rows["final_val_mae"].iloc[:4].tolist() == [4.0, 3.6, 3.3, 8.0]  # the last epoch's
    assert rows.loc[0, "best_val_loss"] == pytest.approx(9.0)
    assert rows.loc[0, "final_val_loss"] == pytest.approx(16.0)
    assert rows.loc[0, "train_r2"] == pytest.approx(1 - (2.0 * 0.9) ** 2 / 100.0)
    assert math.isnan(rows.loc[4, "final_val_mae"]) and rows.loc[4, "fit"] == "none"
    assert rows.loc[3, "fit"] == "pruned"
    # beside each verdict the figure that decided it; none beside pruned or undiagnosed
    for number in (0, 1, 2):
        diag = diagnose(_curves("regression", REGRESSION[number][1]), DiagnosisSpec())
        assert diag is not None
        assert (rows.loc[number, "fit"], rows.loc[number, "fit_rule"]) == (diag.fit, diag.rule)
    assert rows.loc[3, "fit_rule"] == "" and rows.loc[4, "fit_rule"] == ""


@pytest.mark.parametrize(
    ("column", "reverse", "order"),
    [
        ("value", False, [0, 2, 1, 3, 4]),  # lowest best val_mae first, unscored trials last
        ("value", True, [1, 2, 0, 3, 4]),
        ("final_val_mae", False, [2, 1, 0, 3, 4]),  # an error: lowest first
        ("best_val_loss", False, [0, 2, 1, 3, 4]),
        ("train_r2", False, [0, 2, 1, 3, 4]),  # higher is better, like any plain number
        ("train_r2", True, [3, 1, 2, 0, 4]),
    ],
)
def test_regression_rows_sort_by_the_value_they_were_scored_with(
    made: Any, column: str, reverse: bool, order: list[int]
) -> None:
    stores, study, _ = made
    frame = trials_frame(study, _client(stores))
    ordered = sort_trials(frame, column, direction="minimize", reverse=reverse)
    assert ordered["trial"].tolist() == order


def test_regression_display_shows_val_mae_and_val_loss_columns(made: Any) -> None:
    stores, study, _ = made
    scoring, frame = scored_frame(study, _client(stores))
    shown = display_frame(sort_trials(frame, direction=scoring.direction), scoring)
    n = f" (n={VAL_SIZE})"
    assert shown.columns.tolist() == [
        "trial", "state", "params", f"best val_mae{n}", f"final val_mae{n}",
        f"best val_loss{n}", f"final val_loss{n}", "loss ratio", "train R²", *DISPLAY_TAIL,
    ]  # fmt: skip
    assert shown["trial"].tolist() == ["0", "2", "1", "3", "4"]
    assert shown[f"best val_mae{n}"].tolist() == ["3.0000", "3.2000", "3.5000", "—", "—"]
    assert shown[f"final val_mae{n}"].tolist()[:3] == ["4.0000", "3.3000", "3.6000"]


def test_binary_auc_study_ranks_by_auc_and_shows_accuracy_after_it(made: Any) -> None:
    stores, _, study = made
    scoring, frame = scored_frame(study, _client(stores))
    assert (scoring.kind, scoring.metric, scoring.direction) == ("binary", "val_auc", "maximize")
    assert frame.columns.tolist() == [*HEAD, *BINARY_COLUMNS, *TAIL]
    ordered = sort_trials(frame, direction=scoring.direction)
    assert ordered["trial"].tolist() == [0, 2, 1]
    assert ordered["value"].tolist() == [0.95, 0.93, 0.91]
    assert sort_trials(frame, "final_val_auc")["trial"].tolist() == [2, 1, 0]
    assert sort_trials(frame, "best_val_accuracy")["trial"].tolist() == [1, 0, 2]
    shown = display_frame(ordered, scoring)
    n = f" (n={VAL_SIZE})"
    assert shown.columns.tolist() == [
        "trial", "state", "params", f"best val_auc{n}", f"final val_auc{n}",
        f"best val_acc{n}", f"final val_acc{n}", "gap", *DISPLAY_TAIL,
    ]  # fmt: skip
    assert shown[f"best val_acc{n}"].tolist() == ["0.8500", "0.8000", "0.9200"]


# -- the CLI -------------------------------------------------------------------------------------
def test_compare_json_of_a_regression_study(made: Any, cli: Callable[..., CliResult]) -> None:
    stores, study, _ = made
    result = cli("compare", "houses", "--json", *stores.args)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert {k: data[k] for k in ("task", "metric", "reduce", "direction", "sort")} == {
        "task": "regression", "metric": "val_mae", "reduce": "best", "direction": "minimize",
        "sort": "value",
    }  # fmt: skip
    rows = data["trials"]
    assert [r["trial"] for r in rows] == [0, 2, 1, 3, 4]
    assert [r["value"] for r in rows] == [3.0, 3.2, 3.5, None, None]
    assert [r["final_val_mae"] for r in rows] == [4.0, 3.3, 3.6, 8.0, None]
    expected = {"trial", "state", "value", "params", *REGRESSION_COLUMNS, *TAIL}
    assert all(set(r) == expected for r in rows)
    assert "accuracy" not in result.out
    by_trial = {t.number: t.value for t in study.trials}
    assert all(r["value"] == by_trial[r["trial"]] for r in rows)  # Optuna's value, unchanged


def test_compare_text_of_a_regression_study(made: Any, cli: Callable[..., CliResult]) -> None:
    stores, study, _ = made
    result = cli("compare", "houses", *stores.args)
    assert result.code == 0, result.err
    assert "5 of 5 trials by value (best val_mae, lowest first)" in result.out
    header = next(line for line in result.out.splitlines() if line.startswith("┃"))
    columns = [c.strip() for c in header.strip("┃ ").split("┃")]
    assert columns[3:9] == [
        f"best val_mae (n={VAL_SIZE})", f"final val_mae (n={VAL_SIZE})",
        f"best val_loss (n={VAL_SIZE})", f"final val_loss (n={VAL_SIZE})",
        "loss ratio", "train R²",
    ]  # fmt: skip
    # no accuracy and no accuracy-gap column: regression has the loss ratio and train R²
    assert "val_acc" not in result.out and "gap" not in columns
    assert columns[9:11] == ["fit", "fit by"]
    run_of = {t.number: t.user_attrs["nnsweep.mlflow_run_id"] for t in study.trials}
    where = [result.out.index(run_of[n]) for n in (0, 2, 1, 3, 4)]
    assert where == sorted(where)
    flipped = cli("compare", "houses", "--reverse", "--top", "1", *stores.args)
    assert "1 of 5 trials by value (best val_mae, highest first)" in flipped.out
    assert run_of[1] in flipped.out and run_of[0] not in flipped.out


def test_compare_json_of_a_binary_auc_study(made: Any, cli: Callable[..., CliResult]) -> None:
    stores, _, _ = made
    data = json.loads(cli("compare", "tumours", "--json", *stores.args).out)
    assert (data["task"], data["metric"], data["direction"]) == ("binary", "val_auc", "maximize")
    assert [r["trial"] for r in data["trials"]] == [0, 2, 1]
    assert [r["final_val_auc"] for r in data["trials"]] == [0.90, 0.92, 0.91]


def test_report_of_a_regression_study(made: Any, tmp_path: Path) -> None:
    stores, study, _ = made
    report = write_report(study, _client(stores), tmp_path)
    assert overlay_name("mae") in report.files and OVERLAY_PNG not in report.files
    assert (tmp_path / "mae_overlay.png").stat().st_size > 0
    assert not (tmp_path / OVERLAY_PNG).exists()
    table = pd.read_csv(tmp_path / TABLE_CSV)
    assert table["trial"].tolist() == [0, 2, 1, 3, 4]
    assert not [c for c in table.columns if "accuracy" in c]
    md = (tmp_path / TABLE_MD).read_text(encoding="utf-8")
    assert (
        "5 trials (3 COMPLETE, 1 FAIL, 1 PRUNED); task: regression; objective: minimize val_mae, "
        f"scored on {VAL_SIZE} validation rows." in md
    )
    assert f"| best val_mae (n={VAL_SIZE}) | final val_mae (n={VAL_SIZE}) |" in md
    assert "val_acc" not in md and "(mae_overlay.png)" in md


def test_report_of_a_binary_auc_study_draws_auc(made: Any, tmp_path: Path) -> None:
    stores, _, study = made
    report = write_report(study, _client(stores), tmp_path)
    assert "auc_overlay.png" in report.files and OVERLAY_PNG not in report.files
    md = (tmp_path / TABLE_MD).read_text(encoding="utf-8")
    assert "task: binary; objective: maximize val_auc, scored on" in md
    assert md.index("| 0 | COMPLETE") < md.index("| 2 | COMPLETE") < md.index("| 1 | COMPLETE")


def test_status_and_best_name_the_task_and_objective(
    made: Any, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores, _, _ = made
    summary = json.loads(cli("status", "houses", "--json", *stores.args).out)
    assert (summary["task"], summary["metric"], summary["direction"]) == (
        "regression", "val_mae", "minimize",
    )  # fmt: skip
    assert summary["best"] == {"number": 0, "value": 3.0}
    monkeypatch.setenv("COLUMNS", "200")
    table = cli("status", *stores.args).out
    houses = next(line for line in table.splitlines() if "houses" in line)
    assert "regression" in houses and "3.0000 (#0)" in houses and "minimize val_mae" in houses
    tumours = next(line for line in table.splitlines() if "tumours" in line)
    assert "binary" in tumours and "0.9500 (#0)" in tumours and "maximize val_auc" in tumours
    best = cli("best", "houses", *stores.args)
    assert best.out.startswith("trial #0  best val_mae 3 (minimize, regression)  run ")


# -- the MLflow UI link ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("study", "key", "ascending"),
    [("houses", "objective_val_mae", True), ("tumours", "objective_val_auc", False)],
)
def test_ui_link_sorts_by_the_scored_value_in_the_objective_direction(
    made: Any, study: str, key: str, ascending: bool
) -> None:
    stores, *_ = made
    landing = find_experiment(stores.tracking_uri, study)
    assert landing is not None and (landing.metric, landing.ascending) == (key, ascending)
    assert landing.url("http://h:1").endswith(
        f"orderByKey=metrics.%60{key}%60&orderByAsc={str(ascending).lower()}"
    )
    # MLflow itself, asked for that order (what the UI does with the link), lists the best
    # trial first and the unscored runs (pruned, failed, the parent) last
    client = _client(stores)
    runs = client.search_runs(
        [landing.experiment_id], order_by=[f"metrics.`{key}` {'ASC' if ascending else 'DESC'}"]
    )
    trials = [int(r.data.tags["nnsweep.trial"]) for r in runs if "nnsweep.trial" in r.data.tags]
    scored = len([1 for r in runs if key in r.data.metrics])
    assert trials[:scored] == [0, 2, 1]


def test_ui_link_of_runs_logged_before_the_objective_metric(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "old")
    tracker.start_parent("old", tags={}, params={"objective": "best val_mae"})  # no direction
    landing = find_experiment(uri, None)
    assert landing is not None and (landing.metric, landing.ascending) == ("val_mae", True)
    assert runs_url("http://h:1", "1", "val_accuracy").endswith("orderByAsc=false")


# -- how a study's task is told -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("attrs", "kind", "digits"),
    [
        ({COMPARABLE_ATTR: {"dataset.task_kind": "regression"}}, "regression", False),
        ({OBJECTIVE_ATTR: "val_auc"}, "binary", True),
        ({OBJECTIVE_ATTR: "val_mae", SPEC_ATTR: {"dataset": {"path": "a.csv"}}}, "regression",
         False),
        ({SPEC_ATTR: {"dataset": {"name": "mnist_5k"}}}, "multiclass", True),
        ({COMPARABLE_ATTR: {"dataset.name": "fashion_mnist"}}, "multiclass", True),
        ({SPEC_ATTR: {"dataset": {"name": "imdb"}}}, None, False),
        ({}, None, True),
    ],
)  # fmt: skip
def test_task_of_a_study(attrs: dict[str, Any], kind: str | None, digits: bool) -> None:
    assert task_of(attrs) == kind
    assert is_digit_study(attrs) is digits


def test_a_study_without_a_stored_task_is_told_by_its_runs(made: Any) -> None:
    stores, study, _ = made
    bare = optuna.create_study(direction="minimize")
    bare.set_user_attr(EXPERIMENT_ATTR, study.user_attrs[EXPERIMENT_ATTR])
    bare.set_user_attr(OBJECTIVE_ATTR, "val_loss")
    for t in study.trials:
        bare.add_trial(t)
    client = _client(stores)
    assert scoring_of(bare).kind == "multiclass"  # nothing to go by: a digit study
    told = scored_frame(bare, client)[0]
    assert (told.kind, told.unit) == ("regression", "rows")  # its runs have loss rules
    assert scoring_of(bare).curve_metric == "accuracy"
    assert Scoring("regression", "val_loss").curve_metric == "mae"


def test_overlay_draws_the_task_metric_with_the_dropout_off_training_curve() -> None:
    from nnsweep.train.plots import Curves, accuracy_overlay

    evaluated = {"val_mae": [5.0, 3.0], "mae": [6.0, 4.0], "train_eval_mae": [4.5, 2.5]}
    keras_only = {"val_mae": [5.5, 3.5], "mae": [6.5, 4.5]}
    fig = accuracy_overlay(
        [("top", [Curves("#0", evaluated), Curves("#1", keras_only)])], title="t", metric="mae"
    )
    (ax,) = fig.axes
    drawn = [(line.get_linestyle(), list(line.get_ydata())) for line in ax.get_lines()]
    assert drawn == [
        ("-", [5.0, 3.0]), ("--", [4.5, 2.5]),  # dropout off where the run has it
        ("-", [5.5, 3.5]), ("--", [6.5, 4.5]),  # else Keras' own training mae
    ]  # fmt: skip
    assert ax.get_ylabel() == "mae"
    assert fig.get_suptitle().endswith(
        "(solid: val_mae, dashed: mae on the training data, dropout off)"
    )


def test_status_of_a_journal_study_names_its_task_through_optuna(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    log = tmp_path / "optuna.log"
    storage = JournalStorage(JournalFileBackend(str(log)))
    study = optuna.create_study(study_name="j", storage=storage, direction="minimize")
    study.set_user_attr(OBJECTIVE_ATTR, "val_loss")
    study.set_user_attr(COMPARABLE_ATTR, {"dataset.task_kind": "regression"})
    study.add_trial(create_trial(value=2.5, params={}, distributions={}))
    summary = json.loads(cli("status", "j", "--storage", f"journal:///{log}", "--json").out)
    assert (summary["task"], summary["metric"], summary["direction"]) == (
        "regression", "val_loss", "minimize",
    )  # fmt: skip
    assert summary["best"] == {"number": 0, "value": 2.5}
