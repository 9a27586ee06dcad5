"""``export --pick RULE``: each rule picks the trial a by-hand computation names.

The rules are pure functions of the trials and the study's directions
(:mod:`nnsweep.export.pick`); the by-hand versions below are written from the rules' words,
independently of it. The CLI tests check that a rule other than ``best`` on a single-objective
study, or a malformed rule, is one stderr line, exit 2, and nothing written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.study import StudyDirection

from nnsweep.errors import ExportError
from nnsweep.export.pick import (
    Rule,
    card_section,
    markdown,
    parse_rule,
    pick,
    pick_in,
    summary_line,
)
from nnsweep.study.front import directions_of
from nnsweep.track.tracker import Tracker
from tests.conftest import CliResult, Stores
from tests.results._mo import Made, by_hand_front, done, make_study

# maximise val_accuracy vs params: 0 is dominated by 1 (same accuracy, more params); 2 and 3
# tie exactly (both on the front); 5 is dominated by 4
ACCURACY = [(0.95, 25_000), (0.95, 20_000), (0.948, 9_000), (0.948, 9_000), (0.94, 5_000),
            (0.935, 6_000), (0.93, 2_000), (0.90, 1_000)]  # fmt: skip
# minimise val_mae vs params: 5 is dominated by 1; 2 sits exactly on the edge of
# smallest-within:2 (3.0 + 2), 6 just past it
MAE = [(3.0, 50_000), (3.5, 8_000), (5.0, 3_000), (4.0, 6_000), (9.0, 500), (3.6, 9_000),
       (5.0001, 2_900)]  # fmt: skip
SINGLE = [(0.97, 100), (0.90, 5_000), (0.95, 300)]  # trial 0 dominates: a one-point front
TWO = [(0.95, 1_000), (0.90, 100)]
LINE = [(0.90, 100), (0.92, 200), (0.94, 300)]  # a front on a straight line: no knee

Values = list[tuple[float, float]]


def _trials(values: Values, direction: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(
        directions=[StudyDirection[direction.upper()], StudyDirection.MINIMIZE]
    )
    for v in values:
        study.add_trial(optuna.trial.create_trial(values=list(v), params={}, distributions={}))
    return study.trials


# -- the rules, by hand -------------------------------------------------------------------------
def _ranked(values: Values, maximize: bool) -> list[int]:
    sign = -1 if maximize else 1
    return sorted(range(len(values)), key=lambda i: (sign * values[i][0], values[i][1], i))


def by_hand_best(values: Values, maximize: bool) -> int:
    return _ranked(values, maximize)[0]


def by_hand_smallest_within(values: Values, maximize: bool, tol: float) -> int:
    best = values[by_hand_best(values, maximize)][0]
    band = [
        i
        for i in _ranked(values, maximize)
        if (values[i][0] >= best - tol - 1e-12 if maximize else values[i][0] <= best + tol + 1e-12)
    ]
    return min(band, key=lambda i: (values[i][1], band.index(i)))


def by_hand_knee(values: Values, maximize: bool) -> int:
    front = by_hand_front(dict(enumerate(values)), maximize=maximize)
    order = [i for i in _ranked(values, maximize) if i in front]
    if len(order) < 3:
        return order[0]
    good_x = [values[i][0] if maximize else -values[i][0] for i in order]
    good_y = [-values[i][1] for i in order]

    def scale(v: list[float]) -> list[float]:
        lo, hi = min(v), max(v)
        return [(x - lo) / (hi - lo) for x in v]

    pts = list(zip(scale(good_x), scale(good_y), strict=True))
    (ax, ay), (bx, by) = pts[0], pts[-1]
    dist = [abs((bx - ax) * (ay - y) - (ax - x) * (by - ay)) / math.dist(pts[0], pts[-1])
            for x, y in pts]  # fmt: skip
    if max(dist) < 1e-12:
        return order[0]
    return order[dist.index(max(dist))]


CASES = [
    # (values, direction, metric, rule, trial the rule must pick)
    (ACCURACY, "maximize", "val_accuracy", "best", 1),
    (ACCURACY, "maximize", "val_accuracy", "smallest-within:0.5", 2),  # 2 and 3 tie: earlier
    (ACCURACY, "maximize", "val_accuracy", "smallest-within:1", 4),  # 0.94 is on the edge
    (ACCURACY, "maximize", "val_accuracy", "smallest-within:0", 1),
    (ACCURACY, "maximize", "val_accuracy", "smallest-within:100", 7),
    (ACCURACY, "maximize", "val_accuracy", "knee", 4),
    (MAE, "minimize", "val_mae", "best", 0),
    (MAE, "minimize", "val_mae", "smallest-within:2", 2),  # in metric units, edge inclusive
    (MAE, "minimize", "val_mae", "smallest-within:0.5", 1),
    (MAE, "minimize", "val_mae", "knee", 1),
    (SINGLE, "maximize", "val_accuracy", "knee", 0),
    (SINGLE, "maximize", "val_accuracy", "smallest-within:5", 0),
    (TWO, "maximize", "val_accuracy", "knee", 0),
    (LINE, "maximize", "val_accuracy", "knee", 2),
    (LINE, "maximize", "val_auc", "smallest-within:2", 1),  # val_auc: points too
]


@pytest.mark.parametrize(("values", "direction", "metric", "text", "expected"), CASES)
def test_each_rule_picks_the_trial_the_by_hand_computation_names(
    values: Values, direction: str, metric: str, text: str, expected: int
) -> None:
    maximize = direction == "maximize"
    rule = parse_rule(text)
    if rule.name == "best":
        by_hand = by_hand_best(values, maximize)
    elif rule.name == "knee":
        by_hand = by_hand_knee(values, maximize)
    else:
        tol = (rule.points or 0) / 100 if metric in ("val_accuracy", "val_auc") else rule.points
        by_hand = by_hand_smallest_within(values, maximize, tol or 0.0)
    assert by_hand == expected
    made = pick(_trials(values, direction), [direction, "minimize"], rule, metric)
    assert made.trial.number == expected
    front = by_hand_front(dict(enumerate(values)), maximize=maximize)
    assert {t.number for t in made.front} == front
    assert made.trial.number in front  # every rule picks a front trial
    assert {t.number for t in made.passed_over} == front - {expected}


@pytest.mark.parametrize(
    ("values", "needs"),
    [(SINGLE, "the front has 1"), (TWO, "the front has 2"), (LINE, "straight line")],  # fmt: skip
)
def test_knee_without_a_knee_falls_back_to_best_and_says_so(values: Values, needs: str) -> None:
    made = pick(_trials(values, "maximize"), ["maximize", "minimize"], Rule("knee"), "val_accuracy")
    assert made.trial.number == by_hand_best(values, True)
    assert made.note is not None and needs in made.note and "best primary value" in made.note


def test_a_single_objective_pick_is_the_best_trial() -> None:
    study = optuna.create_study(direction="minimize")
    for v in (0.3, 0.1, 0.2):
        study.add_trial(optuna.trial.create_trial(value=v, params={}, distributions={}))
    made = pick(study.trials, ["minimize"], Rule(), "val_loss")
    assert made.trial.number == 1 and [t.number for t in made.front] == [1]
    with pytest.raises(ValueError, match="needs two objectives"):
        pick(study.trials, ["minimize"], Rule("knee"), "val_loss")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("best", Rule()),
        ("KNEE", Rule("knee")),
        ("smallest-within:0.5", Rule("smallest-within", 0.5)),
        (" smallest-within:2 ", Rule("smallest-within", 2.0)),
    ],  # fmt: skip
)
def test_parse_rule(text: str, rule: Rule) -> None:
    assert parse_rule(text) == rule
    assert str(parse_rule(text)) == text.strip().lower().replace(":2.0", ":2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smallest-within:abc", "POINTS must be a number >= 0"),
        ("smallest-within", "POINTS must be a number >= 0"),
        ("smallest-within:-1", "POINTS must be a number >= 0"),
        ("smallest-within:nan", "POINTS must be a number >= 0"),
        ("elbow", "the rule is one of best, smallest-within:POINTS or knee"),
    ],
)
def test_a_bad_rule_names_the_value_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ExportError, match=message) as caught:
        parse_rule(text)
    assert f"--pick {text}" in str(caught.value) and "e.g. --pick" in str(caught.value)


def test_pick_in_leaves_history_out_and_the_card_names_the_alternatives(stores: Stores) -> None:
    trials = [Made(optuna.trial.TrialState.COMPLETE, 0.99, 10.0, history=True)]
    trials += [done(a, p) for a, p in ACCURACY]
    study = make_study(stores.storage, None, "mo", trials)
    made = pick_in(study, parse_rule("knee"), "val_accuracy")
    assert made.trial.number == 5  # ACCURACY's trial 4, one number later
    assert directions_of(study) == ["maximize", "minimize"]
    section = card_section(made, study)
    assert section["rule"] == "knee" and section["also"] == "params"
    assert section["chosen"] == {"trial": 5, "value": 0.94, "also": 5_000.0, "run_id": None}
    assert [t["trial"] for t in section["passed_over"]] == [2, 3, 4, 7, 8]
    assert section["front_size"] == 6 and "farthest from the line" in section["rule_text"]
    card = {"pick": section}
    line = summary_line(card)
    assert line == (
        "picked by knee: trial #5 (val_accuracy 0.9400, params 5,000) of a 6-trial Pareto front"
    )
    page = "\n".join(markdown(card))
    assert "- rule: `knee`" in page and "| 8 | 0.9000 | 1,000 |" in page
    assert summary_line({"pick": None}) is None and markdown({"pick": None}) == []
    within = card_section(pick_in(study, parse_rule("smallest-within:0.5"), "val_accuracy"), study)
    assert (
        "among the 4 trials whose val_accuracy is within 0.5 accuracy points" in within["rule_text"]
    )


@pytest.mark.parametrize("rule", ["knee", "smallest-within:0.5", "smallest-within:abc", "x"])
def test_cli_refuses_a_bad_or_multi_objective_rule_and_writes_nothing(
    stores: Stores, cli: Callable[..., CliResult], tmp_path: Path, rule: str
) -> None:
    Tracker(stores.tracking_uri, "one")  # the store exists, as after a sweep
    study = optuna.create_study(study_name="one", storage=stores.storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    attrs = dict(study.user_attrs)
    out = tmp_path / "exported"
    result = cli("export", "one", "--out", out, "--pick", rule, *stores.args)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and f"--pick {rule}" in result.err
    if rule in ("knee", "smallest-within:0.5"):
        assert "has one objective" in result.err and "drop --pick" in result.err
    assert not out.exists()
    assert optuna.load_study(study_name="one", storage=stores.storage).user_attrs == attrs
    client = MlflowClient(stores.tracking_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


# -- a real sweep -------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_two_objective_sweep_exports_the_trial_each_rule_names(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A tiny real sweep on wine with ``also: params`` (Keras training, SQLite Optuna and
    MLflow stores); ``export --pick`` under two rules exports, and names on its card, the trial
    the by-hand computation over the study's own trials names."""
    import json

    from nnsweep.study.own import own_complete
    from tests.export._study import sweep

    stores, _ = sweep(
        tmp_path, "mo", trials=6, objective={"metric": "val_accuracy", "also": "params"},
        space={"n_layers": {"low": 1, "high": 2}, "units": {"low": 2, "high": 64, "log": True},
               "activation": "relu", "optimizer": "adam", "learning_rate": 0.01, "dropout": 0.0},
    )  # fmt: skip
    study = optuna.load_study(study_name="mo", storage=stores.storage)
    assert len(study.directions) == 2
    own = own_complete(study)
    values = [(float(t.values[0]), float(t.values[1])) for t in own]
    numbers = [t.number for t in own]
    front = {numbers[i] for i in by_hand_front(dict(enumerate(values)))}
    # the sweep's parent run carries the front; status, best and report show it
    client = MlflowClient(stores.tracking_uri)
    experiment = client.get_experiment_by_name("mo")
    assert experiment is not None
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`nnsweep.role` = 'study'")
    assert parent.data.metrics["pareto_size"] == len(front)
    assert "pareto_front.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    line = f"Pareto front of val_accuracy and params: {len(front)} trial"
    assert line in cli("status", *stores.args).out
    assert f"Pareto front: {len(front)} trial" in cli("best", "mo", *stores.args).out
    report = cli("report", "mo", "--out", tmp_path / "report", *stores.args)
    assert report.code == 0 and line in report.out
    assert (tmp_path / "report" / "pareto_front.html").is_file()
    expected = {
        "knee": numbers[by_hand_knee(values, True)],
        "smallest-within:5": numbers[by_hand_smallest_within(values, True, 0.05)],
    }
    for i, (rule, trial) in enumerate(expected.items()):
        out = tmp_path / f"export-{i}"
        again = ["--reread-test"] if i else []
        result = cli("export", "mo", "--out", out, "--pick", rule, "--no-baseline", *again,
                     *stores.args)  # fmt: skip
        assert result.code == 0, result.err
        card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
        assert card["trial"] == trial and card["pick"]["rule"] == rule
        assert card["pick"]["chosen"]["trial"] == trial
        assert {t["trial"] for t in card["pick"]["passed_over"]} == front - {trial}
        assert f"picked by {rule}: trial #{trial} " in result.out
        page = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
        assert f"- rule: `{rule}`" in page and f"- chosen: trial #{trial}," in page
        if rule == "knee" and len(front) < 3:  # no knee on a 1- or 2-point front: said so
            assert "knee needs 3 front points" in card["pick"]["note"]
