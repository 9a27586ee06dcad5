"""The ``start_with:`` list: configurations a new study trains first, before its sampler draws.

Each entry maps searched dimensions, named as trials record them (``n_layers``, ``units_0``,
``units_1``, …, ``learning_rate``, ``batch_size``), to values inside the space; a dimension an
entry leaves out is drawn by the sampler. A new study enqueues them (``study.enqueue_trial``)
once, before its first trial (:func:`nnsweep.study.warm.start_new_study`); a resumed study
never enqueues them again. Zero-config sweeps start with two plain MLPs
(:func:`nnsweep.spec.defaults.default_start`), so the search is never worse than the plain
model a user would have tried first, as judged on the same validation scores.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import Field

from nnsweep.spec.space import (
    Choice,
    Dimension,
    Fixed,
    FloatRange,
    IntRange,
    dimension_of,
    short_repr,
)

MAX_START = 20
"""The most configurations ``start_with`` may list."""

StartValue = bool | int | float | str
StartWithField = Annotated[
    list[dict[str, StartValue]] | None, Field(None, min_length=1, max_length=MAX_START)
]

_UNITS = re.compile(r"units_(\d{1,3})")


def _describe(dim: Dimension) -> str:
    if isinstance(dim, Fixed):
        return f"fixed at {short_repr(dim.value)}"
    if isinstance(dim, Choice):
        return f"one of {', '.join(short_repr(c) for c in dim.choices)}"
    if isinstance(dim, IntRange | FloatRange):
        step = f" in steps of {dim.step:g}" if dim.step and dim.step != 1 else ""
        return f"from {dim.low:g} to {dim.high:g}{step}"
    return "its space"


def contains(dim: Dimension, value: Any) -> bool:
    """Whether ``dim`` can draw ``value`` as it is (no clipping, no rounding, no coercion)."""
    if isinstance(dim, Fixed):
        return type(value) is type(dim.value) and value == dim.value
    if isinstance(dim, Choice):
        return any(type(value) is type(c) and value == c for c in dim.choices)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(dim, IntRange):
        return (
            isinstance(value, int)
            and is_number
            and dim.low <= value <= dim.high
            and (value - dim.low) % dim.step == 0
        )
    if isinstance(dim, FloatRange):
        if not is_number or not math.isfinite(value) or not dim.low <= value <= dim.high:
            return False
        if dim.step is None:
            return True
        steps = (value - dim.low) / dim.step
        return math.isclose(steps, round(steps), abs_tol=1e-9)
    return False


def start_with_problem(spec: Any) -> str | None:
    """Why ``spec.start_with`` does not fit ``spec``'s space, or None: one line naming the
    entry and key, and the fix.

    ``spec`` is the :class:`~nnsweep.spec.config.SweepSpec` being validated (typed ``Any``:
    config imports this module).
    """
    points = spec.start_with
    if not points or "space" not in spec.model_fields_set:
        return None  # no space yet: checked once the default space is chosen (.defaults)
    dims: dict[str, Dimension] = spec.grid_dims()
    searched = sorted(k for k, d in dims.items() if not d.is_fixed)
    names = ", ".join("units_0, units_1, ..." if k == "units" else k for k in searched)
    for i, point in enumerate(points):
        where = f"start_with[{i}]"
        if not point:
            return f"{where}: an empty configuration; name some of the dimensions {names}"
        layers = point.get("n_layers")
        for key, value in point.items():
            name = dimension_of(key)
            if name not in dims:
                return (
                    f"{where}.{short_repr(key)}: not a dimension of this sweep; use "
                    f"{names or 'none: the space has nothing to search'}"
                )
            if key == "units":
                return f"{where}.units: give each layer's width as units_0, units_1, ..."
            dim = dims[name]
            match = _UNITS.fullmatch(key)
            if match and isinstance(layers, int) and int(match.group(1)) >= layers:
                return (
                    f"{where}.{key}: this configuration has n_layers {layers}, so it has no "
                    f"layer {match.group(1)}; give units_0 to units_{layers - 1}"
                )
            most = spec.space.n_layers.largest()
            if name == "units" and (match is None or int(match.group(1)) >= most):
                return f"{where}.{short_repr(key)}: the space has at most {most} layers"
            if not contains(dim, value):
                return (
                    f"{where}.{key}: {short_repr(value)} is not in the space ({_describe(dim)}); "
                    "give a value the space can draw, or widen the space"
                )
    return None


def start_points(spec: Any) -> list[dict[str, Any]]:
    """``spec.start_with`` as ``study.enqueue_trial`` takes it: fixed dimensions left out
    (nnsweep never asks the sampler for them)."""
    dims: dict[str, Dimension] = spec.grid_dims()
    return [
        {k: v for k, v in point.items() if not dims[dimension_of(k)].is_fixed}
        for point in spec.start_with or []
    ]
