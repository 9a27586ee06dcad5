"""Hand-made multi-objective studies in real stores, and the by-hand Pareto front to check them.

A study made here looks like one ``objective: {metric: …, also: params}`` sweeps into: two
directions (the primary's, then ``minimize``), metric names ``[metric, "params"]``, each
COMPLETE trial's ``values`` and every trial's ``also`` attribute, a run per trial in a real
MLflow store (one parent run), and optionally a history trial a warm start copied in.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.distributions import IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from nnsweep.names import (
    EXPERIMENT_ATTR,
    FIT_TAG,
    HISTORY_ATTR,
    OBJECTIVE_ATTR,
    PARAMS_ATTR,
    RUN_ID_ATTR,
)
from nnsweep.study.objectives import ALSO_ATTR
from nnsweep.track.tracker import Tracker

UNITS = IntDistribution(1, 512, log=True)


@dataclass(frozen=True)
class Made:
    """A trial to add: its state, its two values (COMPLETE) or ``also`` alone (PRUNED)."""

    state: TrialState
    primary: float | None = None
    also: float | None = None
    history: bool = False  # copied from an earlier study: no run, never on the front


def done(primary: float, also: float) -> Made:
    return Made(TrialState.COMPLETE, primary, also)


def make_study(
    storage: str | optuna.storages.BaseStorage,
    tracking_uri: str | None,
    name: str,
    trials: Sequence[Made],
    *,
    metric: str = "val_accuracy",
    direction: str = "maximize",
    also: str = "params",
) -> optuna.Study:
    """A multi-objective study ``name`` in ``storage`` holding ``trials`` in order; with
    ``tracking_uri``, each trial but history ones gets a finished MLflow run."""
    directions = [StudyDirection[direction.upper()], StudyDirection.MINIMIZE]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names([metric, also])
    study.set_user_attr(OBJECTIVE_ATTR, metric)
    tracker = Tracker(tracking_uri, name) if tracking_uri else None
    parent = None
    if tracker is not None:
        study.set_user_attr(EXPERIMENT_ATTR, tracker.experiment_id)
        parent = tracker.start_parent(name, tags={}, params={"val_size": 100})
    for i, made in enumerate(trials):
        params = {"units_0": 8 + i}
        attrs: dict[str, object] = {PARAMS_ATTR: params}
        if made.also is not None:
            attrs[ALSO_ATTR] = made.also
        if made.history:
            attrs[HISTORY_ATTR] = f"old#{i}"
        elif tracker is not None and parent is not None:
            run_id = tracker.start_trial(parent, name, i, params)
            if made.state == TrialState.COMPLETE:
                tracker.log_metrics(run_id, {"best_val_accuracy": float(made.primary or 0)})
                tracker.set_tags(run_id, {FIT_TAG: "good"})
            tracker.end_trial(run_id, made.state.name)
            attrs[RUN_ID_ATTR] = run_id
        complete = made.state == TrialState.COMPLETE
        study.add_trial(
            create_trial(
                state=made.state,
                values=[float(made.primary or 0), float(made.also or 0)] if complete else None,
                params=params,
                distributions={"units_0": UNITS},
                user_attrs=attrs,
            )
        )
    return study


def by_hand_front(points: dict[int, tuple[float, float]], maximize: bool = True) -> set[int]:
    """The trial numbers no other point dominates: at least as good on both (primary in its
    direction, the second minimised) and better on one."""
    sign = 1.0 if maximize else -1.0

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        no_worse = sign * a[0] >= sign * b[0] and a[1] <= b[1]
        return no_worse and (sign * a[0] > sign * b[0] or a[1] < b[1])

    return {n for n, p in points.items() if not any(dominates(q, p) for q in points.values())}
