"""A study's objectives: the primary metric, and the optional second one it trades it against.

A sweep with ``objective: {metric: val_accuracy, also: params}`` makes a multi-objective
Optuna study with ``directions=[<the metric's direction>, "minimize"]`` and metric names
``[metric, ALSO_METRICS[also]]`` (Optuna's ``Study.set_metric_names``). Everything that reads a
study goes through these helpers, so single- and multi-objective studies read the same way:
the primary value is ``trial.values[0]`` (``trial.value`` for a single-objective trial), and
the second one, when there is one, ``trial.values[1]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

# the second objective a sweep may name (``objective.also``), and the metric name it is
# logged and stored under; both are minimised
ALSO_METRICS: dict[str, str] = {"params": "params", "latency": "latency_ms"}

# trial user attributes of a multi-objective study: the second objective's value, set on every
# trial (pruned ones too) as soon as it is measured; and the primary metric's per-step values
# ({"step": value}), which nnsweep.train.prune judges instead of Optuna's intermediate values
ALSO_ATTR = "also"
PRIMARY_CURVE_ATTR = "primary_curve"

# what the second objective's figure is, for tables and cards
ALSO_LABELS: dict[str, str] = {
    "params": "trainable parameters",
    "latency_ms": "one-row CPU latency p50 (ms)",
}


def is_multi(study: optuna.Study) -> bool:
    """Whether ``study`` optimises more than one objective."""
    return len(study.directions) > 1


def primary_direction(study: optuna.Study) -> str:
    """The primary objective's direction: ``"maximize"`` or ``"minimize"``."""
    return str(study.directions[0].name.lower())


def also_metric(study: optuna.Study) -> str | None:
    """The second objective's metric name (``params``, ``latency_ms``), or None."""
    if not is_multi(study):
        return None
    names = study.metric_names
    return str(names[1]) if names and len(names) > 1 and names[1] else "objective_1"


def primary_value(trial: FrozenTrial) -> float | None:
    """A finished trial's primary value (None for a trial without values)."""
    values = trial.values
    return None if not values else float(values[0])


def also_value(trial: FrozenTrial) -> float | None:
    """A finished trial's second objective value (None without one)."""
    values = trial.values
    return None if not values or len(values) < 2 else float(values[1])


def trial_also(trial: FrozenTrial) -> float | None:
    """The second objective of any trial, pruned ones included (its ``also`` attribute, else
    its second value), or None when it was never measured."""
    stored = trial.user_attrs.get(ALSO_ATTR)
    return float(stored) if stored is not None else also_value(trial)


def study_directions(spec_direction: str, also: str | None) -> list[str]:
    """The directions of a study whose primary metric goes ``spec_direction``, and which
    trades it against ``also`` (None: single-objective)."""
    return [spec_direction] if also is None else [spec_direction, "minimize"]


def primary_order(direction: str) -> Callable[[FrozenTrial], tuple[float, float, int]]:
    """A sort key for finished trials: best primary value first in ``direction``, then the
    smaller second value (a trial that ties on the primary and costs less dominates), then the
    earlier trial."""
    sign = -1.0 if direction == "maximize" else 1.0

    def key(t: FrozenTrial) -> tuple[float, float, int]:
        second = also_value(t)
        return (sign * float(t.values[0]), 0.0 if second is None else second, t.number)

    return key
