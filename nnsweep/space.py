"""Search-space dimensions: a fixed value, a list of choices, or an int/float range.

A sweep file writes each entry of ``space:`` in one of three shapes::

    optimizer: adam                                  # fixed
    activation: [relu, tanh]                         # choices
    learning_rate: {low: 1.0e-4, high: 0.1, log: true}  # range (int or float)

The parsers here turn that raw YAML into :class:`Dimension` objects and raise ``ValueError``
with the rule and the value received; :mod:`nnsweep.config` adds the field name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

Scalar = int | float | str


class Dimension:
    """One entry of the search space."""

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """Sample (or return) this dimension's value for ``trial`` under ``name``."""
        raise NotImplementedError

    def grid_values(self) -> list[Any] | None:
        """All values, when the dimension is finite; ``None`` for a continuous range."""
        raise NotImplementedError

    @property
    def is_fixed(self) -> bool:
        return False

    def raw(self) -> Any:
        """The dimension as a sweep file writes it (parses back to an equal dimension)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(Dimension):
    value: Scalar

    def suggest(self, trial: optuna.Trial, name: str) -> Scalar:
        return self.value

    def grid_values(self) -> list[Any]:
        return [self.value]

    def raw(self) -> Any:
        return self.value

    @property
    def is_fixed(self) -> bool:
        return True


@dataclass(frozen=True)
class Choice(Dimension):
    choices: tuple[Scalar, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Scalar:
        return trial.suggest_categorical(name, list(self.choices))  # type: ignore[arg-type]

    def grid_values(self) -> list[Any]:
        return list(self.choices)

    def raw(self) -> Any:
        return list(self.choices)


@dataclass(frozen=True)
class IntRange(Dimension):
    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))

    def raw(self) -> Any:
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}


@dataclass(frozen=True)
class FloatRange(Dimension):
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any] | None:
        if self.step is None:
            return None
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def raw(self) -> Any:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


_RANGE_KEYS = {"low", "high", "step", "log"}


def _number(raw: Any, kind: type, what: str) -> int | float:
    if isinstance(raw, bool):
        raise ValueError(f"{what} must be a number, but got {raw!r}")
    if kind is int:
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw)
            except ValueError:
                pass
        raise ValueError(f"{what} must be a whole number, but got {raw!r}")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):  # PyYAML reads 1e-4 (no dot) as a string
        try:
            return float(raw)
        except ValueError:
            pass
    raise ValueError(f"{what} must be a number, but got {raw!r}")


def _check_bounds(value: float, minimum: float | None, maximum: float | None, what: str) -> None:
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, but got {value}")
    if maximum is not None and value >= maximum:
        raise ValueError(f"{what} must be < {maximum}, but got {value}")


def parse_numeric(
    raw: Any,
    kind: type,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> Dimension:
    """Parse a numeric entry: a number, a list of numbers, or ``{low, high, step?, log?}``.

    Args:
        raw: the YAML value.
        kind: ``int`` or ``float``.
        minimum: the smallest allowed value (inclusive).
        maximum: the bound values must stay below (exclusive).
        positive: values must be > 0 (learning rates).

    Raises:
        ValueError: with the rule broken and the value received.
    """
    if isinstance(raw, Dimension):
        return raw

    def check(value: float, what: str) -> None:
        _check_bounds(value, minimum, maximum, what)
        if positive and value <= 0:
            raise ValueError(f"{what} must be > 0, but got {value}")

    if isinstance(raw, dict):
        unknown = set(raw) - _RANGE_KEYS
        if unknown:
            raise ValueError(
                f"unknown key {sorted(unknown)[0]!r} in a range; allowed: low, high, step, log"
            )
        if "low" not in raw or "high" not in raw:
            raise ValueError("a range needs both low and high, e.g. {low: 1, high: 3}")
        low = _number(raw["low"], kind, "low")
        high = _number(raw["high"], kind, "high")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise ValueError(f"log must be true or false, but got {log!r}")
        if low > high:
            raise ValueError(f"low <= high must hold, but got (low={low}, high={high})")
        if log and low <= 0:
            raise ValueError(f"a log range needs low > 0, but got (low={low}); raise low above 0")
        check(low, "low")
        check(high, "high")
        step_raw = raw.get("step")
        if kind is int:
            step = 1 if step_raw is None else int(_number(step_raw, int, "step"))
            if step < 1:
                raise ValueError(f"step must be >= 1, but got {step}")
            if log and step != 1:
                raise ValueError("step and log cannot be combined; drop one of them")
            return IntRange(int(low), int(high), step, log)
        step_f = None if step_raw is None else float(_number(step_raw, float, "step"))
        if step_f is not None and step_f <= 0:
            raise ValueError(f"step must be > 0, but got {step_f}")
        if step_f is not None and log:
            raise ValueError("step and log cannot be combined; drop one of them")
        return FloatRange(float(low), float(high), step_f, log)
    if isinstance(raw, list):
        if not raw:
            raise ValueError("choices must not be empty; list at least one value")
        values = [_number(v, kind, "each choice") for v in raw]
        for v in values:
            check(v, "each choice")
        if len(set(values)) != len(values):
            raise ValueError(f"choices must be distinct, but got {values}")
        return Choice(tuple(values))
    value = _number(raw, kind, "the value")
    check(value, "the value")
    return Fixed(value)


def parse_categorical(raw: Any, allowed: Sequence[str]) -> Dimension:
    """Parse a categorical entry: one name or a list of names, each from ``allowed``."""
    if isinstance(raw, Dimension):
        return raw
    values = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) and not raw:
        raise ValueError(f"choices must not be empty; pick from {', '.join(allowed)}")
    for v in values:
        if not isinstance(v, str) or v not in allowed:
            raise ValueError(f"{v!r} is not one of {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"choices must be distinct, but got {values}")
    return Choice(tuple(values)) if isinstance(raw, list) else Fixed(raw)
