"""Which trial ``nnsweep export --pick RULE`` exports from a study with two objectives.

A multi-objective study (``objective: {metric: …, also: params|latency}``,
:mod:`nnsweep.study.objectives`) has no single best trial: its Pareto front
(:mod:`nnsweep.study.front`) holds every trial that no other one beats on both the primary
metric and the second one (minimised). A rule names the front trial to export; every rule
reads only the sweep's validation scores and the second objective, never the test split:

``best`` (the default)
    The best primary value; ties: the smaller second value, then the earlier trial. The only
    rule a single-objective study takes.
``smallest-within:POINTS``
    The smallest second value among the trials whose primary value is within POINTS of the
    best one: POINTS are percentage points for a metric on a 0..1 scale (``val_accuracy``,
    ``val_auc``: ``smallest-within:0.5`` keeps trials at or above best − 0.005) and the
    metric's own units otherwise (``val_loss``, ``val_mae``: ``smallest-within:2`` keeps trials
    at or below best + 2). The bound is inclusive. Ties: the better primary value, then the
    earlier trial. No trial outside the band can dominate the one chosen, so it is on the front.
``knee``
    The front point farthest from the straight line through the front's two ends (the best
    primary value, and the smallest second value), after scaling each objective to [0, 1]
    over the front: where giving up a little of one objective buys the most of the other.
    Ties: the better primary value. With fewer than 3 front points, or a front on a straight
    line, there is no knee: ``best`` is picked and the pick says so.

:func:`pick` is a pure function of the trials and the study's directions; :func:`pick_in`
applies it to a study's own COMPLETE trials (history copied by a warm start is left out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnsweep.errors import ExportError, NoCompleteTrialError
from nnsweep.names import PARAMS_ATTR, RUN_ID_ATTR
from nnsweep.study.front import directions_of, front_of_trials
from nnsweep.study.objectives import (
    also_metric,
    also_value,
    is_multi,
    primary_order,
    primary_value,
)
from nnsweep.study.own import own_complete

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

BEST, SMALLEST_WITHIN, KNEE = "best", "smallest-within", "knee"
RULES = f"{BEST}, {SMALLEST_WITHIN}:POINTS or {KNEE}"
# metrics on a 0..1 scale: smallest-within reads its POINTS as percentage points of them
FRACTION_METRICS = ("val_accuracy", "val_auc")
KNEE_MIN_POINTS = 3
_EPS = 1e-12  # float slack for the band's edge and for a flat front


@dataclass(frozen=True)
class Rule:
    """A parsed ``--pick`` rule: ``name`` and, for ``smallest-within``, its ``points``."""

    name: str = BEST
    points: float | None = None

    def __str__(self) -> str:
        return self.name if self.points is None else f"{self.name}:{self.points:g}"


def parse_rule(text: str) -> Rule:
    """``best``, ``knee`` or ``smallest-within:POINTS`` (POINTS a finite number ≥ 0).

    Raises:
        ExportError: the value received, the rules and an example.
    """
    raw = text.strip().lower()
    if raw in (BEST, KNEE):
        return Rule(raw)
    name, colon, points = raw.partition(":")
    if name == SMALLEST_WITHIN:
        try:
            value = float(points) if colon else math.nan
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return Rule(SMALLEST_WITHIN, value)
        raise ExportError(
            f"--pick {text}: POINTS must be a number >= 0, e.g. --pick smallest-within:0.5 "
            "(within 0.5 accuracy points of the best)"
        )
    raise ExportError(f"--pick {text}: the rule is one of {RULES}; e.g. --pick knee")


def check_rule(rule: Rule, study: optuna.Study) -> None:
    """Refuse a rule other than ``best`` on a single-objective study.

    Raises:
        ExportError: naming the study, the rule and the fix.
    """
    if rule.name != BEST and not is_multi(study):
        raise ExportError(
            f"--pick {rule}: study {study.study_name!r} has one objective, so its best trial is "
            f"the only pick; drop --pick, or sweep with a second objective "
            "(objective: {metric: …, also: params})"
        )


@dataclass(frozen=True)
class Pick:
    """The trial a rule chose, the front it chose from and why."""

    rule: Rule
    trial: FrozenTrial
    front: list[FrozenTrial]
    directions: list[str]
    metric: str
    note: str | None = None  # a fallback, said out loud (``knee`` with < 3 front points)
    tolerance: float | None = None  # smallest-within: the band's width, in the metric's units
    eligible: list[int] = field(default_factory=list)  # smallest-within: the band's trials

    @property
    def passed_over(self) -> list[FrozenTrial]:
        """The other front trials, best primary first."""
        return [t for t in self.front if t.number != self.trial.number]


def tolerance_of(points: float, metric: str) -> float:
    """``smallest-within``'s band in the metric's units: ``points`` / 100 for a metric on a
    0..1 scale (:data:`FRACTION_METRICS`), ``points`` otherwise."""
    return points / 100 if metric in FRACTION_METRICS else points


def pick(trials: Sequence[FrozenTrial], directions: Sequence[str], rule: Rule, metric: str) -> Pick:
    """The trial ``rule`` picks among ``trials`` (COMPLETE, with values), whose objectives go
    ``directions`` (primary first; ``"maximize"``/``"minimize"``), the primary one ``metric``.

    Raises:
        ValueError: no trials, or a rule other than ``best`` with one objective.
    """
    done = [t for t in trials if primary_value(t) is not None]
    if not done:
        raise ValueError("no COMPLETE trial to pick from")
    if rule.name != BEST and len(directions) < 2:
        raise ValueError(f"--pick {rule} needs two objectives")
    order = primary_order(directions[0])
    ranked = sorted(done, key=order)
    front = front_of_trials(done, directions) if len(directions) > 1 else ranked[:1]
    made = Pick(rule, ranked[0], front, list(directions), metric)
    if rule.name == SMALLEST_WITHIN:
        return _smallest_within(made, ranked, rule.points or 0.0)
    if rule.name == KNEE:
        return _knee(made)
    return made


def _smallest_within(made: Pick, ranked: list[FrozenTrial], points: float) -> Pick:
    tol = tolerance_of(points, made.metric)
    best = float(ranked[0].values[0])
    maximize = made.directions[0] == "maximize"
    band = [
        t
        for t in ranked
        if (t.values[0] >= best - tol - _EPS if maximize else t.values[0] <= best + tol + _EPS)
    ]
    # the smallest second value; ties: the better primary, then the earlier trial (the band
    # is in that order)
    _, chosen = min(enumerate(band), key=lambda it: (float(it[1].values[1]), it[0]))
    return Pick(made.rule, chosen, made.front, made.directions, made.metric,
                tolerance=tol, eligible=sorted(t.number for t in band))  # fmt: skip


def _knee(made: Pick) -> Pick:
    front = made.front
    if len(front) < KNEE_MIN_POINTS:
        note = (
            f"knee needs {KNEE_MIN_POINTS} front points, the front has {len(front)}: "
            "picked the best primary value instead"
        )
        return Pick(made.rule, made.trial, front, made.directions, made.metric, note=note)
    # both objectives scaled to [0, 1] over the front, 1 the better end
    sign = [1.0 if d == "maximize" else -1.0 for d in made.directions[:2]]
    scaled = []
    for axis in (0, 1):
        values = [sign[axis] * float(t.values[axis]) for t in front]
        low, span = min(values), max(values) - min(values)
        scaled.append([(v - low) / span if span > 0 else 0.0 for v in values])
    points = list(zip(scaled[0], scaled[1], strict=True))
    (x1, y1), (x2, y2) = points[0], points[-1]  # the ends: best primary, smallest second
    length = math.hypot(x2 - x1, y2 - y1)
    distances = [
        abs((y2 - y1) * x - (x2 - x1) * y + x2 * y1 - y2 * x1) / length if length > 0 else 0.0
        for x, y in points
    ]
    far = max(distances)
    if far <= _EPS:
        note = "the front lies on a straight line, so it has no knee: picked the best primary value"
        return Pick(made.rule, made.trial, front, made.directions, made.metric, note=note)
    chosen = front[distances.index(far)]  # the first of equals: the better primary value
    return Pick(made.rule, chosen, front, made.directions, made.metric)


def pick_in(study: optuna.Study, rule: Rule, metric: str) -> Pick:
    """:func:`pick` over the study's own COMPLETE trials.

    Raises:
        ExportError: a rule other than ``best`` on a single-objective study.
        NoCompleteTrialError: the study has no COMPLETE trial of its own.
    """
    check_rule(rule, study)
    done = [t for t in own_complete(study) if primary_value(t) is not None]
    if not done:
        raise NoCompleteTrialError(
            f"study {study.study_name!r} has no COMPLETE trial yet; run or resume it with "
            "`nnsweep run SWEEP`"
        )
    return pick(done, directions_of(study), rule, metric)


def trial_info(trial: FrozenTrial) -> dict[str, Any]:
    """A trial as :func:`nnsweep.study.storage.best_trial` gives one: number, primary value,
    full params, MLflow run id."""
    return {
        "number": trial.number,
        "value": primary_value(trial),
        "params": trial.user_attrs.get(PARAMS_ATTR, trial.params),
        "run_id": trial.user_attrs.get(RUN_ID_ATTR),
    }


def rule_text(p: Pick, also: str | None = None) -> str:
    """What the rule did, in one sentence for the card (``also``: the second metric's name)."""
    metric, second = p.metric, also or "second objective"
    if p.rule.name == SMALLEST_WITHIN:
        unit = "accuracy points" if metric in FRACTION_METRICS else f"{metric} units"
        return (
            f"the smallest {second} among the {len(p.eligible)} trials whose {metric} is "
            f"within {p.rule.points:g} {unit} ({p.tolerance:g}) of the best"
        )
    if p.rule.name == KNEE:
        if p.note:
            return p.note
        return (
            "the knee: the front point farthest from the line between its two ends, both "
            "objectives scaled to [0, 1] over the front"
        )
    return f"the best {metric}"


def card_section(p: Pick, study: optuna.Study) -> dict[str, Any]:
    """The card's ``pick`` section: the rule, what it did, the chosen trial's two values and
    the front trials it passed over (with theirs)."""

    def values(t: FrozenTrial) -> dict[str, Any]:
        return {"trial": t.number, "value": primary_value(t), "also": also_value(t),
                "run_id": t.user_attrs.get(RUN_ID_ATTR)}  # fmt: skip

    return {
        "rule": str(p.rule),
        "rule_text": rule_text(p, also_metric(study)),
        "note": p.note,
        "metric": p.metric,
        "also": also_metric(study),
        "directions": p.directions,
        "front_size": len(p.front),
        "chosen": values(p.trial),
        "passed_over": [values(t) for t in p.passed_over],
    }


def summary_line(card: dict[str, Any]) -> str | None:
    """``picked by knee: trial #4 (val_accuracy 0.9410, params 1,234) over 3 front trials``,
    or None when the card has no pick (a single-objective study)."""
    section = card.get("pick")
    if not section:
        return None
    chosen, also = section["chosen"], section["also"]
    line = (
        f"picked by {section['rule']}: trial #{chosen['trial']} ({section['metric']} "
        f"{_score(chosen['value'])}, {also} {_num(chosen['also'])}) of a "
        f"{section['front_size']}-trial Pareto front"
    )
    return line + (f"; {section['note']}" if section.get("note") else "")


def _num(value: Any) -> str:
    """A second objective's value: a count as ``12,345``, a latency as ``0.8123``."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def _score(value: Any) -> str:
    """A primary value as the card shows scores: 4 decimals."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"


def markdown(card: dict[str, Any]) -> list[str]:
    """``MODEL_CARD.md``'s "Pick" section: the rule and the front trials it passed over."""
    section = card.get("pick")
    if not section:
        return []
    metric, also = section["metric"], section["also"]
    chosen = section["chosen"]
    lines = [
        "",
        "## Pick (two objectives: a Pareto front)",
        "",
        f"- rule: `{section['rule']}`: {section['rule_text']}",
        f"- chosen: trial #{chosen['trial']}, {metric} {_score(chosen['value'])}, "
        f"{also} {_num(chosen['also'])}",
    ]
    if section.get("note"):
        lines.append(f"- note: {section['note']}")
    passed = section["passed_over"]
    if passed:
        lines += ["", "Front trials passed over:", "", f"| trial | {metric} | {also} |",
                  "|---:|---:|---:|"]  # fmt: skip
        lines += [f"| {t['trial']} | {_score(t['value'])} | {_num(t['also'])} |" for t in passed]
    else:
        lines.append("- passed over: none (the front is this one trial)")
    return lines
