"""Search-space dimensions: a fixed value, a list of choices, or an int/float range.

A sweep file writes each entry of ``space:`` in one of three shapes::

    optimizer: adam                                  # fixed
    activation: [relu, tanh]                         # choices
    learning_rate: {low: 1.0e-4, high: 0.1, log: true}  # range (int or float)

The parsers here turn that raw YAML into :class:`Dimension` objects and raise ``ValueError``
with the rule and the value received; :mod:`nnsweep.spec.config` adds the field name. Values in
messages are cut to :data:`MESSAGE_VALUE_CHARS` characters (:func:`short_repr`), and every
number must be finite.

Ranges are checked arithmetically: :meth:`Dimension.size` and :meth:`Dimension.largest` never
list the values, and :meth:`Dimension.grid_values` refuses to list more than
:data:`GRID_LIMIT` of them, so ``{low: 1, high: 10000000000}`` costs nothing to check.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import optuna

Scalar = int | float | str

GRID_LIMIT = 100_000
"""The most values (of one dimension, or grid points of a whole grid) that are ever listed."""
MESSAGE_VALUE_CHARS = 80
"""Values quoted in error messages are cut to this many characters."""

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 4 * MESSAGE_VALUE_CHARS  # then cut with …
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def short_repr(value: Any, limit: int = MESSAGE_VALUE_CHARS) -> str:
    """``repr(value)`` on one line, at most ``limit`` characters (cut with ``…``).

    Built with :mod:`reprlib`, so a huge or deeply nested value is never rendered in full.
    """
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        text = f"<an int of about {int(value.bit_length() * 0.30103)} digits>"
    text = text.replace("\n", "\\n").replace("\r", "\\r")  # repr escapes these; be sure
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dimension_of(param: str) -> str:
    """The sweep-file dimension a trial's param is drawn from: ``units_2`` → ``units``."""
    head, _, tail = param.rpartition("_")
    return head if head == "units" and tail.isdigit() else param


class Dimension:
    """One entry of the search space."""

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """Sample (or return) this dimension's value for ``trial`` under ``name``."""
        raise NotImplementedError

    def size(self) -> int | None:
        """How many values the dimension holds; ``None`` for a continuous range."""
        raise NotImplementedError

    def largest(self) -> Any:
        """The largest value the dimension can take (computed, not listed)."""
        raise NotImplementedError

    def grid_values(self) -> list[Any] | None:
        """All values, when the dimension is finite; ``None`` for a continuous range.

        Raises:
            ValueError: the dimension has more than :data:`GRID_LIMIT` values.
        """
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

    def size(self) -> int:
        return 1

    def largest(self) -> Scalar:
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
        return cast(Scalar, trial.suggest_categorical(name, list(self.choices)))

    def size(self) -> int:
        return len(self.choices)

    def largest(self) -> Scalar:
        return max(self.choices)

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

    def size(self) -> int:
        return (self.high - self.low) // self.step + 1

    def largest(self) -> int:
        return self.low + (self.size() - 1) * self.step

    def grid_values(self) -> list[Any]:
        _listable(self.size())
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

    def size(self) -> int | None:
        if self.step is None:
            return None
        # a tiny step over a wide range overflows to inf: count it as "very many"
        return int(math.floor(min((self.high - self.low) / self.step + 1e-9, 1e18))) + 1

    def largest(self) -> float:
        if self.step is None:
            return self.high
        return round(self.low + (self.size() or 1) * self.step - self.step, 12)

    def grid_values(self) -> list[Any] | None:
        n = self.size()
        if n is None or self.step is None:
            return None
        _listable(n)
        return [round(self.low + i * self.step, 12) for i in range(n)]

    def raw(self) -> Any:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


def _listable(n: int) -> None:
    if n > GRID_LIMIT:
        raise ValueError(f"{n:,} values are too many to list (at most {GRID_LIMIT:,})")


_RANGE_KEYS = {"low", "high", "step", "log"}
_MAX_NUMBER_CHARS = 40  # longer number strings are refused before int()/float() parse them


def _as_float(raw: Any) -> float | None:
    """``raw`` as a float when it is a number or a number-like string (PyYAML reads ``1e-4``,
    without a dot, as a string), else ``None``."""
    if isinstance(raw, int | float):
        try:
            return float(raw)
        except OverflowError:  # an int beyond the float range
            return math.inf if raw > 0 else -math.inf
    if isinstance(raw, str) and len(raw) <= _MAX_NUMBER_CHARS:
        try:
            return float(raw)
        except ValueError:
            return None
    return None


def _number(raw: Any, kind: type, what: str) -> int | float:
    if isinstance(raw, bool):
        raise ValueError(f"{what} must be a number, but got {short_repr(raw)}")
    value = _as_float(raw)
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, but got {short_repr(raw)}")
    if kind is int:
        if isinstance(raw, int):
            return raw
        if value is not None and value.is_integer():
            return int(raw) if isinstance(raw, str) and raw.strip().isdigit() else int(value)
        raise ValueError(f"{what} must be a whole number, but got {short_repr(raw)}")
    if value is None:
        raise ValueError(f"{what} must be a number, but got {short_repr(raw)}")
    return value


def _check_bounds(
    value: float,
    minimum: float | None,
    maximum: float | None,
    at_most: float | None,
    what: str,
) -> None:
    shown = short_repr(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, but got {shown}")
    if maximum is not None and value >= maximum:
        raise ValueError(f"{what} must be < {maximum}, but got {shown}")
    if at_most is not None and value > at_most:
        raise ValueError(f"{what} must be <= {at_most:,}, but got {shown}")


def _parse_range(
    raw: dict[str, Any], kind: type, check: Callable[[float, str], None]
) -> IntRange | FloatRange:
    """``{low, high, step?, log?}`` as a range of ``kind``, each bound checked by ``check``."""
    unknown = set(raw) - _RANGE_KEYS
    if unknown:
        first = sorted(map(str, unknown))[0]
        raise ValueError(
            f"unknown key {short_repr(first)} in a range; allowed: low, high, step, log"
        )
    if "low" not in raw or "high" not in raw:
        raise ValueError("a range needs both low and high, e.g. {low: 1, high: 3}")
    low = _number(raw["low"], kind, "low")
    high = _number(raw["high"], kind, "high")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"log must be true or false, but got {short_repr(log)}")
    if low > high:
        raise ValueError(
            f"low <= high must hold, but got (low={short_repr(low, 36)}, "
            f"high={short_repr(high, 36)})"
        )
    if log and low <= 0:
        raise ValueError(
            f"a log range needs low > 0, but got (low={short_repr(low)}); raise low above 0"
        )
    check(low, "low")
    check(high, "high")
    step_raw = raw.get("step")
    if kind is int:
        step = 1 if step_raw is None else int(_number(step_raw, int, "step"))
        if step < 1:
            raise ValueError(f"step must be >= 1, but got {short_repr(step)}")
        if log and step != 1:
            raise ValueError("step and log cannot be combined; drop one of them")
        return IntRange(int(low), int(high), step, log)
    step_f = None if step_raw is None else float(_number(step_raw, float, "step"))
    if step_f is not None and step_f <= 0:
        raise ValueError(f"step must be > 0, but got {step_f}")
    if step_f is not None and log:
        raise ValueError("step and log cannot be combined; drop one of them")
    return FloatRange(float(low), float(high), step_f, log)


def parse_numeric(
    raw: Any,
    kind: type,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    at_most: float | None = None,
    positive: bool = False,
) -> Dimension:
    """Parse a numeric entry: a number, a list of numbers, or ``{low, high, step?, log?}``.

    Args:
        raw: the YAML value.
        kind: ``int`` or ``float``.
        minimum: the smallest allowed value (inclusive).
        maximum: the bound values must stay below (exclusive).
        at_most: the largest allowed value (inclusive).
        positive: values must be > 0 (learning rates).

    Raises:
        ValueError: with the rule broken and the value received.
    """
    if isinstance(raw, Dimension):
        return raw

    def check(value: float, what: str) -> None:
        _check_bounds(value, minimum, maximum, at_most, what)
        if positive and value <= 0:
            raise ValueError(f"{what} must be > 0, but got {short_repr(value)}")

    if isinstance(raw, dict):
        return _parse_range(raw, kind, check)
    if isinstance(raw, list):
        if not raw:
            raise ValueError("choices must not be empty; list at least one value")
        values = [_number(v, kind, "each choice") for v in raw]
        for v in values:
            check(v, "each choice")
        if len(set(values)) != len(values):
            raise ValueError(f"choices must be distinct, but got {short_repr(values)}")
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
            raise ValueError(f"{short_repr(v)} is not one of {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"choices must be distinct, but got {short_repr(values)}")
    return Choice(tuple(values)) if isinstance(raw, list) else Fixed(raw)
