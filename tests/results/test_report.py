"""The study report: the trials table, its order, the files, and the CLI commands.

Most tests read a hand-made study (Optuna trials + MLflow runs with known diagnoses); the slow
one runs a real sweep and checks what lands in MLflow and on disk.
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
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from nnsweep.data.load import load_dataset
from nnsweep.errors import NoCompleteTrialError, StorageError
from nnsweep.names import FIT_REASON_TAG, FIT_RULE_TAG, FIT_TAG
from nnsweep.results.report import (
    DIAGNOSIS_COLUMNS,
    OPTUNA_PLOTS,
    OVERLAY_PNG,
    REPORT_ARTIFACT_DIR,
    TABLE_CSV,
    TABLE_MD,
    Scoring,
    display_frame,
    fit_counts,
    overlay_groups,
    sort_trials,
    to_markdown,
    trials_frame,
    write_report,
)
from nnsweep.spec.config import load_spec
from nnsweep.track.tracker import Tracker, fetch_history, open_reader
from nnsweep.train.diagnosis import diagnose
from nnsweep.train.steps import CURVES_ARTIFACT
from nnsweep.ui.server import find_experiment
from tests.conftest import CliResult, Stores

DISTRIBUTIONS = {
    "units_0": IntDistribution(8, 128, log=True),
    "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
    "activation": CategoricalDistribution(["relu", "tanh"]),
}
# number: (state, value, units_0, learning_rate, fit, best val acc, gap). Trial 3 is a pruned
# trial logged before pruned runs got their own tag: its run says underfit, Optuna says PRUNED.
TRIALS: dict[int, tuple[TrialState, float | None, int, float, str | None, float, float]] = {
    0: (TrialState.COMPLETE, 0.93, 64, 3e-3, "good", 0.93, 0.02),
    1: (TrialState.COMPLETE, 0.95, 128, 1e-3, "overfit", 0.95, 0.09),
    2: (TrialState.COMPLETE, 0.80, 8, 1e-4, "underfit", 0.80, -0.01),
    3: (TrialState.PRUNED, None, 16, 2e-4, "underfit", 0.60, 0.00),
    4: (TrialState.FAIL, None, 32, 9e-3, None, math.nan, math.nan),
    5: (TrialState.COMPLETE, 0.91, 96, 2e-3, "overfit", 0.91, 0.12),
}
VAL_SIZE = 450
# the figure that decided each verdict (tag nnsweep.fit_rule), shown beside it as "fit by"
RULES = {
    "good": "gap_accuracy 0.020",
    "overfit": "val_loss_rise 0.274 > 0.15",
    "underfit": "train_skill 0.050 < 0.1",
}


def _add_trials(
    study: optuna.Study, tracker: Tracker, spec: dict[int, Any], val_size: int | None = VAL_SIZE
) -> None:
    """Log ``spec``'s trials under one parent run (``val_size=None``: a sweep that predates
    the param) and add them to ``study``."""
    params = {} if val_size is None else {"val_size": val_size}
    parent = tracker.start_parent(study.study_name, tags={}, params=params)
    for number, (state, value, units, lr, fit, best, gap) in spec.items():
        params = {"units_0": units, "learning_rate": lr, "activation": "relu"}
        run_id = tracker.start_trial(parent, study.study_name, number, params)
        epochs = 2 if state == TrialState.PRUNED else 3
        for epoch in range(1, epochs + 1):
            tracker.log_metrics(
                run_id, {"accuracy": 0.5 + 0.1 * epoch, "val_accuracy": 0.45 + 0.1 * epoch}, epoch
            )
        tracker.log_metrics(run_id, {"epochs_run": epochs})
        if fit is not None:
            tracker.log_metrics(
                run_id,
                {
                    "best_val_accuracy": best,
                    "final_val_accuracy": best - 0.005,
                    "gap_accuracy": gap,
                    "best_epoch": 3,
                },
            )
            tracker.set_tags(run_id, {FIT_TAG: fit, FIT_RULE_TAG: RULES[fit]})
        tracker.end_trial(run_id, state.name)
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=params,
                distributions=DISTRIBUTIONS,
                user_attrs={"nnsweep.mlflow_run_id": run_id, "nnsweep.params": params},
            )
        )


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('report') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def made(tracking_uri: str) -> tuple[optuna.Study, MlflowClient]:
    """A study of six trials with known diagnoses, plus one surplus trial that never ran."""
    tracker = Tracker(tracking_uri, "made")
    study = optuna.create_study(study_name="made", direction="maximize")
    study.set_user_attr("nnsweep.experiment_id", tracker.experiment_id)
    study.set_user_attr("nnsweep.objective", "val_accuracy")
    _add_trials(study, tracker, TRIALS)
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            user_attrs={"nnsweep.surplus": True},
            params={},
            distributions={},
        )
    )
    return study, tracker.client


def test_trials_frame_joins_optuna_and_mlflow(made: tuple[optuna.Study, MlflowClient]) -> None:
    study, client = made
    frame = trials_frame(study, client)
    assert frame["trial"].tolist() == [0, 1, 2, 3, 4, 5]  # the surplus trial is left out
    assert frame.columns[:3].tolist() == ["trial", "state", "value"]
    assert {"params.units_0", "params.learning_rate", "params.activation"} <= set(frame.columns)
    assert frame.columns[-5:].tolist() == ["fit", "fit_rule", "epochs", "duration_s", "run_id"]
    row = frame.set_index("trial").loc[1]
    assert (row["state"], row["fit"], row["params.units_0"]) == ("COMPLETE", "overfit", 128)
    assert row["fit_rule"] == RULES["overfit"]
    assert row["gap_accuracy"] == pytest.approx(0.09)
    assert row["final_val_accuracy"] == pytest.approx(0.945)
    assert len(row["run_id"]) == 32
    failed = frame.set_index("trial").loc[4]
    assert failed["fit"] == "none" and math.isnan(failed["value"])
    assert math.isnan(failed["best_val_accuracy"])
    # PRUNED in Optuna is the pruned group, whatever verdict an older run carries
    assert frame.set_index("trial").loc[3, "fit"] == "pruned"
    # ... and no rule decided it: its old run's underfit rule is not shown beside "pruned"
    assert frame.set_index("trial").loc[3, "fit_rule"] == ""
    assert failed["fit_rule"] == ""
    assert frame["val_size"].tolist() == [VAL_SIZE] * 6  # from the parent run's params


def test_fit_counts_keep_pruned_trials_apart(made: tuple[optuna.Study, MlflowClient]) -> None:
    frame = trials_frame(*made)
    counts = fit_counts(frame)
    # every verdict is counted, a stable generalisation gap too (0 here), then pruned and none
    assert counts == {
        "underfit": 1, "good": 1, "generalisation_gap": 0, "overfit": 2, "pruned": 1, "none": 1,
    }  # fmt: skip
    assert list(counts) == ["underfit", "good", "generalisation_gap", "overfit", "pruned", "none"]
    judged = fit_counts(frame[~frame["fit"].isin(["none", "pruned"])])
    assert judged == {"underfit": 1, "good": 1, "generalisation_gap": 0, "overfit": 2}


@pytest.mark.parametrize(
    ("column", "direction", "reverse", "order"),
    [
        ("value", "maximize", False, [1, 0, 5, 2, 3, 4]),  # best first, no value last
        ("value", "minimize", False, [2, 5, 0, 1, 3, 4]),
        ("gap_accuracy", "maximize", False, [5, 1, 0, 3, 2, 4]),  # worst overfitter first
        ("gap_accuracy", "maximize", True, [2, 3, 0, 1, 5, 4]),
        ("trial", "maximize", False, [0, 1, 2, 3, 4, 5]),
        ("fit", "maximize", False, [0, 4, 1, 5, 3, 2]),  # text: A to Z (good, none, over…)
        ("learning_rate", "maximize", False, [4, 0, 5, 1, 3, 2]),  # a bare param name
    ],
)
def test_sort_trials(
    made: tuple[optuna.Study, MlflowClient],
    column: str,
    direction: str,
    reverse: bool,
    order: list[int],
) -> None:
    frame = trials_frame(*made)
    ordered = sort_trials(frame, column, direction=direction, reverse=reverse)
    assert ordered["trial"].tolist() == order


def test_sort_by_an_unknown_column_lists_the_columns(
    made: tuple[optuna.Study, MlflowClient],
) -> None:
    with pytest.raises(ValueError, match=r"no column 'bogus'; sort by one of trial, state, value"):
        sort_trials(trials_frame(*made), "bogus")


def test_display_frame_and_markdown(made: tuple[optuna.Study, MlflowClient]) -> None:
    shown = display_frame(sort_trials(trials_frame(*made)))
    best, final = f"best val_acc (n={VAL_SIZE})", f"final val_acc (n={VAL_SIZE})"
    assert shown.columns.tolist() == [
        "trial", "state", "params", best, final, "gap", "fit", "fit by", "duration", "run id",
    ]  # fmt: skip
    first = shown.iloc[0]
    # activation is relu everywhere, so only the params that vary are shown
    assert first["params"] == "units_0=128 learning_rate=0.001"
    assert (first[best], first["gap"], first["fit"]) == ("0.9500", "0.090", "overfit")
    assert first["fit by"] == RULES["overfit"]
    assert shown.set_index("trial").loc["3", "fit by"] == ""  # pruned: no rule decided it
    assert shown.iloc[-1][best] == "—"
    md = to_markdown(pd.DataFrame({"a": ["x|y", None], "b": [1.5, math.nan]}))
    assert md.splitlines() == ["| a | b |", "| --- | --- |", "| x\\|y | 1.5000 |", "| — | — |"]


def test_overlay_groups(made: tuple[optuna.Study, MlflowClient]) -> None:
    frame = trials_frame(*made)
    top, bad, pruned = overlay_groups(frame, Scoring(), top_k=2, worst=1)
    assert top == [1, 0]
    # largest gap among overfitters, lowest best val acc among underfitters: trial 2 (0.80),
    # not the pruned trial 3 (0.60) whose old run says underfit
    assert bad == [5, 2]
    assert pruned == [3]


def test_write_report_files(made: tuple[optuna.Study, MlflowClient], tmp_path: Path) -> None:
    stale = tmp_path / "param_importances.html"
    stale.write_text("old")
    report = write_report(*made, tmp_path)
    learned = {"importances.csv", "importances.png", "what_we_learned.md"}  # what mattered
    assert set(report.files) == {
        TABLE_CSV, TABLE_MD, "fit_counts.csv", OVERLAY_PNG, *OPTUNA_PLOTS, *learned,
    }  # fmt: skip
    assert report.notes == []
    assert report.n_trials == 6
    for name in report.files:
        assert (tmp_path / name).stat().st_size > 0
    assert stale.read_text() != "old"
    html = (tmp_path / "parallel_coordinate.html").read_text(encoding="utf-8")
    assert "plotly" in html and "units_0" in html
    table = pd.read_csv(tmp_path / TABLE_CSV)
    assert table["trial"].tolist() == [1, 0, 5, 2, 3, 4]
    md = (tmp_path / TABLE_MD).read_text(encoding="utf-8")
    assert (
        "6 trials (4 COMPLETE, 1 FAIL, 1 PRUNED); objective: maximize val_accuracy, "
        f"scored on {VAL_SIZE} validation images." in md
    )
    assert "| overfit | 2 |" in md and "(accuracy_overlay.png)" in md
    assert "| underfit | 1 |" in md and "| pruned | 1 |" in md
    assert "not counted as underfit, good, generalisation_gap or overfit" in md
    assert "| generalisation_gap | 0 |" in md
    assert f"| overfit | {RULES['overfit']} |" in md  # the deciding figure beside the verdict
    assert f"| best val_acc (n={VAL_SIZE}) |" in md
    counts = pd.read_csv(tmp_path / "fit_counts.csv")
    assert dict(zip(counts["fit"], counts["runs"], strict=True)) == {
        "underfit": 1, "good": 1, "generalisation_gap": 0, "overfit": 2, "pruned": 1, "none": 1,
    }  # fmt: skip
    assert report.counts["pruned"] == 1 and report.val_sizes == [VAL_SIZE]


def test_plots_that_need_more_complete_trials_are_skipped_with_a_note(
    tracking_uri: str, tmp_path: Path
) -> None:
    tracker = Tracker(tracking_uri, "one")
    study = optuna.create_study(study_name="one", direction="maximize")
    study.set_user_attr("nnsweep.experiment_id", tracker.experiment_id)
    _add_trials(study, tracker, {0: TRIALS[0], 1: TRIALS[3]}, val_size=None)
    (tmp_path / "param_importances.html").write_text("from an earlier report")
    report = write_report(study, tracker.client, tmp_path)
    assert "optimization_history.html" in report.files
    assert "param_importances.html" not in report.files
    assert not (tmp_path / "param_importances.html").exists()  # no stale plot left behind
    assert any("needs 2 COMPLETE trials, the study has 1" in n for n in report.notes)
    md = (tmp_path / TABLE_MD).read_text(encoding="utf-8")
    assert "Not drawn:" in md
    # no val_size on the parent run: no size is made up
    assert report.val_sizes == [] and "scored on" not in md and "| best val_acc |" in md


def test_trials_scored_on_different_validation_sizes_get_a_val_n_column(
    tracking_uri: str, tmp_path: Path
) -> None:
    tracker = Tracker(tracking_uri, "mixed")
    study = optuna.create_study(study_name="mixed", direction="maximize")
    study.set_user_attr("nnsweep.experiment_id", tracker.experiment_id)
    _add_trials(study, tracker, {0: TRIALS[0], 1: TRIALS[1]}, val_size=400)
    _add_trials(study, tracker, {2: TRIALS[2]}, val_size=1200)
    _add_trials(study, tracker, {3: TRIALS[5]}, val_size=None)
    frame = trials_frame(study, tracker.client)
    assert frame["val_size"].tolist()[:3] == [400, 400, 1200]
    assert math.isnan(frame["val_size"].iloc[3])
    shown = display_frame(frame)
    assert shown.columns[3:6].tolist() == ["best val_acc", "final val_acc", "val n"]
    assert shown["val n"].tolist() == ["400", "400", "1200", "—"]
    top, bad, pruned = overlay_groups(frame, Scoring())
    assert pruned == [] and "pruned" not in fit_counts(frame)  # no pruner, no pruned group
    report = write_report(study, tracker.client, tmp_path)
    md = (tmp_path / TABLE_MD).read_text(encoding="utf-8")
    assert "scored on validation splits of 400 / 1,200 images." in md
    assert report.val_sizes == [400, 1200]


def test_a_store_without_the_runs_is_an_error(
    made: tuple[optuna.Study, MlflowClient], tmp_path: Path
) -> None:
    study, _ = made
    other = Tracker(f"sqlite:///{tmp_path / 'other.db'}", "unrelated")
    with pytest.raises(StorageError, match="holds none of the 6 runs of study 'made'"):
        trials_frame(study, other.client)


def test_missing_sqlite_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(StorageError, match="does not exist; pass the --tracking-uri"):
        open_reader(f"sqlite:///{missing}")
    assert not missing.exists()


def test_a_study_without_trials_is_an_error(tracking_uri: str) -> None:
    study = optuna.create_study(study_name="empty")
    with pytest.raises(NoCompleteTrialError, match="has no trials yet; run it with"):
        trials_frame(study, open_reader(tracking_uri))


# -- a real sweep -------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_sweep_leaves_curves_tags_and_the_report_in_mlflow_and_on_disk(
    cli: Callable[..., CliResult],
    write_sweep: Callable[..., Path],
    stores: Stores,
    tmp_path: Path,
) -> None:
    sweep = write_sweep("tiny", trials=3)
    result = cli("run", sweep, "-q", *stores.args)
    assert result.code == 0, result.err

    client = MlflowClient(tracking_uri=stores.tracking_uri)
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("nnsweep.role") == "trial"]
    (parent,) = [r for r in runs if r.data.tags.get("nnsweep.role") == "study"]
    assert len(children) == 3
    rules = load_spec(sweep).diagnosis
    for run in children:
        # the tags and metrics are the diagnosis of the curves the run itself holds, judged at
        # the epoch whose weights the trial kept
        kept = int(run.data.metrics["weights_epoch"])
        diag = diagnose(fetch_history(client, run.info.run_id), rules, kept)
        assert diag is not None and diag.judged_epoch == kept
        tags = run.data.tags
        assert (tags[FIT_TAG], tags[FIT_REASON_TAG], tags[FIT_RULE_TAG]) == (
            diag.fit, diag.reason, diag.rule,
        )  # fmt: skip
        for key, value in diag.metrics().items():
            assert run.data.metrics[key] == pytest.approx(value), key
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {CURVES_ARTIFACT, "model_summary.txt", "model_config.json"} <= names
        assert {"best_epoch", "gap_accuracy", "val_loss_rise", "trainable_params"} <= set(
            run.data.metrics
        )
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, REPORT_ARTIFACT_DIR)}
    expected = {TABLE_CSV, TABLE_MD, "what_we_learned.md", *OPTUNA_PLOTS}
    assert {f"{REPORT_ARTIFACT_DIR}/{name}" for name in expected} <= logged

    out = tmp_path / "rep"
    result = cli("report", "tiny", "--out", out, *stores.args)
    assert result.code == 0, result.err
    assert f"report of 3 trials written to {out}" in result.out
    for name in (*expected, OVERLAY_PNG):
        assert (out / name).is_file()
    table = pd.read_csv(out / TABLE_CSV)
    assert sorted(table["run_id"]) == sorted(r.info.run_id for r in children)

    # scores come with the size of the split they were measured on
    val_size = int(parent.data.params["val_size"])
    assert val_size == len(load_dataset("mnist_5k", validation=0.1, seed=1).y_val) == 400
    assert table["val_size"].tolist() == [val_size] * 3
    md = (out / TABLE_MD).read_text(encoding="utf-8")
    assert f"scored on {val_size} validation images" in md

    result = cli("compare", "tiny", *stores.args)
    assert result.code == 0, result.err
    for run in children:
        assert run.info.run_id in result.out
    assert "fit: " in result.out and f"best val_acc (n={val_size})" in result.out
    # MNIST reads as before the tasks: the same columns, sentence and figure
    header = next(line for line in result.out.splitlines() if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "trial", "state", "params", f"best val_acc (n={val_size})",
        f"final val_acc (n={val_size})", "gap", "fit", "fit by", "duration", "run id",
    ]  # fmt: skip
    assert "3 of 3 trials by value (best val_accuracy, highest first)" in result.out
    assert f"3 trials (3 COMPLETE); objective: maximize val_accuracy, scored on {val_size} " in md
    data = json.loads(cli("compare", "tiny", "--json", *stores.args).out)
    assert (data["task"], data["metric"], data["direction"]) == (
        "multiclass", "val_accuracy", "maximize",
    )  # fmt: skip
    assert [k for k in data["trials"][0] if k in DIAGNOSIS_COLUMNS] == list(DIAGNOSIS_COLUMNS)
    values = [r["value"] for r in data["trials"]]
    assert values == sorted(values, reverse=True)
    for row in data["trials"]:
        assert row["value"] == pytest.approx(row["best_val_accuracy"])
        logged = client.get_run(row["run_id"]).data.metrics["objective_val_accuracy"]
        assert logged == pytest.approx(row["value"])
    landing = find_experiment(stores.tracking_uri, "tiny")
    assert landing is not None
    assert (landing.metric, landing.ascending) == ("objective_val_accuracy", False)
    top = cli("compare", "tiny", "--top", "1", "--sort", "trial", "--reverse", *stores.args)
    assert "1 of 3 trials by trial" in top.out
    assert sum(r.info.run_id in top.out for r in children) == 1

    bad = cli("compare", "tiny", "--sort", "bogus", *stores.args)
    assert bad.code == 2 and "no column 'bogus'" in bad.err
    missing = cli("report", "nope", *stores.args)
    assert missing.code == 2 and "no study 'nope'" in missing.err
