"""Reading a multi-objective study: its Pareto front, the trials table, the report, the CLI.

Every study here is hand-made in a real SQLite Optuna storage, with a real MLflow run per
trial (tests/results/_mo.py); the front is checked against a by-hand non-dominated
computation over the same values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from nnsweep.results.importance import best_trials, what_we_learned
from nnsweep.results.pareto import (
    FRONT_HTML,
    FRONT_JSON,
    FRONT_PNG,
    log_front,
    read_front,
    run_link,
    write_front,
)
from nnsweep.results.report import TABLE_MD, display_frame, write_report
from nnsweep.results.trials import scored_frame, sort_trials
from nnsweep.study.front import own_front
from nnsweep.study.own import own_best
from nnsweep.study.status import best_summary, read_summaries, study_summaries
from nnsweep.track.tracker import Tracker
from tests.conftest import CliResult, Stores
from tests.results._mo import Made, by_hand_front, done, make_study

# trial 0 is history a warm start copied in: it would dominate every trial, but was never run
# here, so it is no part of the front. 3 is dominated by 1; 5 ties 2 on both values (both on
# the front); 6 ties 2 on the primary at a higher cost (dominated); 7 was pruned.
TRIALS = [
    Made(TrialState.COMPLETE, 0.99, 10.0, history=True),
    done(0.90, 5_000),
    done(0.95, 20_000),
    done(0.88, 6_000),
    done(0.85, 1_000),
    done(0.95, 20_000),
    done(0.95, 30_000),
    Made(TrialState.PRUNED, None, 800),
    done(0.93, 9_000),
    Made(TrialState.FAIL),
]
FRONT = [2, 5, 8, 1, 4]  # best primary first; ties: smaller second, then earlier trial


def _values(trials: list[Made]) -> dict[int, tuple[float, float]]:
    return {
        i: (float(t.primary), float(t.also))  # type: ignore[arg-type]
        for i, t in enumerate(trials)
        if t.state == TrialState.COMPLETE and not t.history
    }


@pytest.fixture
def mo(stores: Stores) -> optuna.Study:
    return make_study(stores.storage, stores.tracking_uri, "mo", TRIALS)


def test_the_front_is_the_by_hand_non_dominated_set(mo: optuna.Study) -> None:
    by_hand = by_hand_front(_values(TRIALS))
    assert by_hand == set(FRONT)
    assert [t.number for t in own_front(mo)] == FRONT
    # Optuna's own front over every trial would take the history trial and nothing else
    assert [t.number for t in mo.best_trials] == [0]
    assert own_best(mo).number == 2  # type: ignore[union-attr]  # ties: smaller cost, earlier


@pytest.mark.parametrize("maximize", [True, False])
def test_random_fronts_match_the_by_hand_computation(stores: Stores, maximize: bool) -> None:
    import random

    rng = random.Random(7 if maximize else 8)
    trials = [done(round(rng.uniform(0, 1), 2), rng.choice([10, 20, 30, 40])) for _ in range(40)]
    study = make_study(stores.storage, None, f"r{maximize}", trials,
                       direction="maximize" if maximize else "minimize")  # fmt: skip
    found = {t.number for t in own_front(study)}
    assert found == by_hand_front(_values(trials), maximize=maximize)


def test_read_front_has_values_params_and_run_links(mo: optuna.Study, stores: Stores) -> None:
    client = MlflowClient(stores.tracking_uri)
    front = read_front(mo, client)
    assert front.numbers == FRONT and front.best == 2
    assert (front.metric, front.also, front.direction) == ("val_accuracy", "params", "maximize")
    assert [(p.primary, p.second) for p in front.points][:2] == [(0.95, 20_000), (0.95, 20_000)]
    assert sorted(p.trial for p in front.others) == [3, 6]  # dominated, own, COMPLETE
    for p in front.points:
        run = client.get_run(str(p.run_id))
        assert p.link == run_link(stores.tracking_uri, run.info.experiment_id, run.info.run_id)
        assert str(p.link).startswith("http://127.0.0.1:5000/#/experiments/")
        assert p.params == {"units_0": 8 + p.trial}
    frame = front.frame()
    assert frame["trial"].tolist() == FRONT
    assert frame["best"].tolist() == [True, False, False, False, False]
    assert "params.units_0" in frame and frame["link"].str.contains("/runs/").all()


def test_run_links_point_at_a_tracking_server_without_its_credentials() -> None:
    link = run_link("https://me:secret@mlflow.example.org:8443/base/", "3", "abc")
    assert link == "https://mlflow.example.org:8443/base/#/experiments/3/runs/abc"
    assert run_link("sqlite:///x.db", "1", "r") == "http://127.0.0.1:5000/#/experiments/1/runs/r"


def test_write_and_log_the_front_on_the_parent_run(
    mo: optuna.Study, stores: Stores, tmp_path: Path
) -> None:
    client = MlflowClient(stores.tracking_uri)
    files = write_front(read_front(mo, client), tmp_path / "f")
    assert files == [FRONT_JSON, FRONT_PNG, FRONT_HTML]
    data = json.loads((tmp_path / "f" / FRONT_JSON).read_text())
    assert [p["trial"] for p in data["front"]] == FRONT and data["size"] == 5
    assert data["best"] == 2 and data["also_label"] == "trainable parameters"
    tracker = Tracker(stores.tracking_uri, "mo")
    parent = tracker.start_parent("mo", tags={}, params={})
    logged = log_front(mo, tracker, parent)
    assert logged is not None and logged.numbers == FRONT
    names = {a.path for a in client.list_artifacts(parent)}
    assert {FRONT_JSON, FRONT_PNG} <= names and FRONT_HTML not in names  # HTML: in report/
    metrics = client.get_run(parent).data.metrics
    assert metrics["pareto_size"] == 5 and metrics["pareto_best_primary"] == 0.95
    assert metrics["pareto_min_params"] == 1_000
    one = optuna.create_study(study_name="one", storage=stores.storage)
    assert log_front(one, client, parent) is None  # single-objective: nothing to log


def test_trials_frame_has_the_second_value_and_the_front_flag(
    mo: optuna.Study, stores: Stores
) -> None:
    scoring, frame = scored_frame(mo, MlflowClient(stores.tracking_uri))
    assert (scoring.direction, scoring.also) == ("maximize", "params")
    assert scoring.as_dict()["also"] == "params"
    assert frame.columns[:5].tolist() == ["trial", "state", "value", "also", "pareto"]
    by_trial = frame.set_index("trial")
    assert 0 not in by_trial.index  # history: not in the report
    assert by_trial.loc[8, "value"] == 0.93 and by_trial.loc[8, "also"] == 9_000
    assert by_trial.loc[7, "also"] == 800 and math.isnan(by_trial.loc[7, "value"])  # pruned
    assert sorted(frame.loc[frame["pareto"], "trial"]) == sorted(FRONT)
    assert sort_trials(frame, "also")["trial"].tolist()[:3] == [7, 4, 1]  # cheapest first
    assert set(sort_trials(frame, "pareto")["trial"].tolist()[:5]) == set(FRONT)
    shown = display_frame(frame, scoring).set_index("trial")
    assert shown.loc["4", "params"] == "units_0=12" and shown.loc["4", "front"] == "✓"
    assert shown.loc["3", "front"] == "" and shown.loc["3", "n_params"] == "6,000"


def test_importances_and_best_trials_read_the_primary_objective(mo: optuna.Study) -> None:
    assert [t.number for t in best_trials(mo, 3)] == [2, 5, 6]
    learned = what_we_learned(mo)
    assert learned.direction == "maximize" and learned.n_complete == 7
    assert set(learned.importances) == {"units_0"}  # fANOVA ran on the primary values


def test_report_draws_the_front_with_run_links(
    mo: optuna.Study, stores: Stores, tmp_path: Path
) -> None:
    report = write_report(mo, MlflowClient(stores.tracking_uri), tmp_path)
    assert {FRONT_PNG, FRONT_HTML, FRONT_JSON} <= set(report.files)
    assert report.front is not None and report.front.numbers == FRONT
    assert (tmp_path / FRONT_PNG).read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / FRONT_HTML).read_text(encoding="utf-8")
    for p in report.front.points:
        assert p.link and f'href="{p.link}"' in html  # the table under the plot links it
    assert "plotly_click" in html
    md = (tmp_path / TABLE_MD).read_text(encoding="utf-8")
    assert "objective: maximize val_accuracy, traded against params (minimised)" in md
    assert "## Pareto front" in md and f"- [{FRONT_HTML}]({FRONT_HTML})" in md
    assert f"| 2 (best) | 0.9500 | 20,000 | [{report.front.points[0].run_id}](" in md
    for name in ("optimization_history.html", "parallel_coordinate.html"):
        assert name in report.files  # Optuna's plots, on the primary objective
    table = pd.read_csv(tmp_path / "trials.csv")
    assert table["trial"].tolist()[:3] == [2, 5, 6]


def test_status_summaries_give_the_primary_and_the_front(mo: optuna.Study, stores: Stores) -> None:
    fast = read_summaries(stores.storage, ["mo"])
    assert fast is not None
    assert fast[0]["direction"] == "maximize" and fast[0]["also"] == "params"
    (summary,) = study_summaries(stores.storage, ["mo"])
    assert summary["best"]["value"] == 0.95 and summary["metric"] == "val_accuracy"
    assert [p["number"] for p in summary["front"]] == FRONT
    assert summary["front"][-1] == {
        "number": 4, "value": 0.85, "also": 1000.0, "run_id": mo.trials[4].user_attrs[
            "nnsweep.mlflow_run_id"]
    }  # fmt: skip


def test_sql_and_optuna_summaries_of_a_two_objective_study_agree(tmp_path: Path) -> None:
    from nnsweep.study.storage import open_storage

    sqlite, journal = f"sqlite:///{tmp_path / 'o.db'}", f"journal:///{tmp_path / 'o.log'}"
    make_study(sqlite, None, "mo", TRIALS)
    make_study(open_storage(journal), None, "mo", TRIALS)
    assert read_summaries(journal, ["mo"]) is None  # a journal: Optuna answers
    fast, slow = study_summaries(sqlite, ["mo"]), study_summaries(journal, ["mo"])
    assert fast == slow
    assert fast[0]["best"] == {"number": 2, "value": 0.95}  # history left out
    assert [p["number"] for p in fast[0]["front"]] == FRONT


def test_best_summary_ranks_by_the_primary_and_carries_the_front(mo: optuna.Study) -> None:
    info = best_summary(mo)
    assert info["number"] == 2 and info["value"] == 0.95
    assert info["also"] == "params" and info["also_value"] == 20_000
    assert [p["number"] for p in info["front"]] == FRONT


def test_status_best_and_compare_show_the_front(
    mo: optuna.Study, stores: Stores, cli: Callable[..., CliResult]
) -> None:
    status = cli("status", *stores.args)
    assert status.code == 0, status.err
    assert "mo: Pareto front of val_accuracy and params: 5 trials, #2 #5 #8 #1 #4" in status.out
    assert "min params" in status.out
    best = cli("best", "mo", *stores.args)
    assert best.code == 0, best.err
    lines = best.out.splitlines()
    assert lines[0].startswith("trial #2  best val_accuracy 0.95")
    start = next(i for i, line in enumerate(lines) if line.startswith("Pareto front: 5 trials"))
    rows = [line.split() for line in lines[start + 2 :]]
    assert [r[0] for r in rows] == ["*", "#5", "#8", "#1", "#4"] and rows[0][1] == "#2"
    assert rows[0][2:4] == ["0.9500", "20,000"] and rows[-1][1:3] == ["0.8500", "1,000"]
    as_json = json.loads(cli("best", "mo", "--json", *stores.args).out)
    assert [p["number"] for p in as_json["front"]] == FRONT
    compare = cli("compare", "mo", *stores.args)
    assert compare.code == 0, compare.err
    assert "Pareto front (✓) of val_accuracy and params: 5 trials, #2 #5 #8 #1 #4" in compare.out
    row = next(line for line in compare.out.splitlines() if "units_0=16" in line)  # trial 8
    assert "✓" in row and "9,000" in row
    row = next(line for line in compare.out.splitlines() if "units_0=11" in line)  # trial 3
    assert "✓" not in row
    rows = json.loads(cli("compare", "mo", "--json", *stores.args).out)
    assert rows["also"] == "params"
    assert {r["trial"] for r in rows["trials"] if r["pareto"]} == set(FRONT)


def test_report_cli_names_the_front(
    mo: optuna.Study, stores: Stores, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    result = cli("report", "mo", "--out", tmp_path / "r", *stores.args)
    assert result.code == 0, result.err
    assert "Pareto front of val_accuracy and params: 5 trials, #2 #5 #8 #1 #4" in result.out
    assert str(tmp_path / "r" / FRONT_HTML) in result.out
