"""A numeric dimension's range as a study's trials drew it, and that range widened past an edge.

:func:`widen` moves one edge of a range by half its span (a factor of the square root of the
range's ratio for a log range), or adds a choice past the largest or smallest one, within the
sweep file's limits (:mod:`nnsweep.spec.limits`). Bound warnings
(:mod:`nnsweep.results.importance`) carry the widened range; :mod:`nnsweep.results.nextsweep`
writes it into the next sweep file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from nnsweep.spec.limits import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LAYERS, MAX_UNITS

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Bounds:
    """A numeric dimension's range as the trials drew it."""

    low: float
    high: float
    log: bool = False
    choices: tuple[float, ...] | None = None  # a list of numbers rather than a range
    integer: bool = False

    def position(self, value: float) -> float:
        """Where ``value`` lies, 0 at ``low`` and 1 at ``high`` (log space for a log range;
        a choice by its rank)."""
        if self.choices is not None:
            ranked = sorted(self.choices)
            return ranked.index(value) / max(1, len(ranked) - 1)
        if self.high == self.low:
            return 0.5
        if self.log:
            return math.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)

    def raw(self) -> Any:
        """As a sweep file writes it."""
        if self.choices is not None:
            return [_plain(c, self.integer) for c in self.choices]
        return {
            "low": _plain(self.low, self.integer),
            "high": _plain(self.high, self.integer),
            "log": self.log,
        }


def _plain(value: float, integer: bool) -> int | float:
    return int(round(value)) if integer else float(f"{value:.3g}")


def bounds_of(distribution: optuna.distributions.BaseDistribution) -> Bounds | None:
    """The :class:`Bounds` of a numeric Optuna distribution; None for other ones."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(distribution, FloatDistribution | IntDistribution):
        integer = isinstance(distribution, IntDistribution)
        return Bounds(distribution.low, distribution.high, distribution.log, integer=integer)
    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)
        if numeric and len(choices) >= 2:
            integer = all(isinstance(c, int) for c in choices)
            values = tuple(float(c) for c in choices)  # type: ignore[arg-type]
            return Bounds(min(values), max(values), choices=values, integer=integer)
    return None


DROPOUT_CAP = 0.9  # dropout must stay below 1; 0.9 already drops nine units in ten
# (smallest, largest) value a sweep file allows per dimension; learning_rate only needs > 0
LIMITS: dict[str, tuple[float, float]] = {
    "n_layers": (1, MAX_LAYERS),
    "units": (1, MAX_UNITS),
    "batch_size": (1, MAX_BATCH_SIZE),
    "epochs": (1, MAX_EPOCHS),
    "dropout": (0.0, DROPOUT_CAP),
    "learning_rate": (1e-8, 10.0),
}


def widen(dimension: str, bounds: Bounds, edge: str) -> Bounds | None:
    """``bounds`` with its ``edge`` ("upper" or "lower") moved out, within the limits; None
    when that edge is at its limit already."""
    lo_limit, hi_limit = LIMITS.get(dimension, (-math.inf, math.inf))
    upper = edge == "upper"
    if bounds.choices is not None:
        ranked = sorted(bounds.choices)
        end, inner = (ranked[-1], ranked[-2]) if upper else (ranked[0], ranked[1])
        step = end - inner
        if bounds.integer and end > 0 and inner > 0:  # batch sizes double
            value = end * (end / inner) if upper else end / (inner / end)
        else:
            value = end + step
        value = _clip(value, lo_limit, hi_limit, bounds.integer, upper)
        if value in ranked:
            return None
        choices = (*ranked, value) if upper else (value, *ranked)
        return replace(bounds, low=min(choices), high=max(choices), choices=choices)
    if bounds.log:
        factor = math.sqrt(bounds.high / bounds.low)
        value = bounds.high * factor if upper else bounds.low / factor
    else:
        half = (bounds.high - bounds.low) / 2
        value = bounds.high + half if upper else bounds.low - half
    value = _clip(value, lo_limit, hi_limit, bounds.integer, upper)
    if not bounds.integer:
        value = float(f"{value:.2g}") if value > 0 else value
        value = min(max(value, lo_limit), hi_limit)
    if value == (bounds.high if upper else bounds.low):
        return None
    return replace(bounds, high=value) if upper else replace(bounds, low=value)


def _clip(value: float, low: float, high: float, integer: bool, upper: bool) -> float:
    if integer:
        value = math.ceil(value) if upper else math.floor(value)
    return min(max(value, low), high)
