"""Warm starts: begin a new study from an earlier one's best trials, or from its whole history.

:func:`plan_warm_start` reads the earlier study (any storage: a journal file while the new
study is on PostgreSQL) and maps its trials into the new space, before anything is written;
:func:`apply_warm_start` then writes the plan into the new study, once, while it has no trials.

* ``mode: enqueue`` (default): the K best COMPLETE trials become the new study's first trials
  (``study.enqueue_trial``), each value clipped into its range, a number off a list of choices
  moved to the nearest one; a choice the new space does not have, or a dimension that is fixed
  now, is left to the sampler. Every dimension that did not map gets one note.
* ``mode: history``: the earlier COMPLETE trials are added to the new study as finished trials
  (``study.add_trials``, distributions of the new space), so TPE starts informed without
  training them again. Only for a study with the same data, task and objective (the comparable
  settings of :mod:`nnsweep.study.comparable`), and only trials that lie inside the new space
  as they are: a clipped trial's score was measured elsewhere. History trials carry
  ``nnsweep.history`` and never count towards the target, the best trial or the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnsweep.errors import SpecError
from nnsweep.names import (
    COMPARABLE_ATTR,
    HISTORY_ATTR,
    PARAMS_ATTR,
    SPEC_ATTR,
    WARM_START_KEY,
)
from nnsweep.spec.space import Fixed, dimension_of
from nnsweep.spec.tabular import EARLIER_VALUES
from nnsweep.study.own import ranked
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec
    from nnsweep.spec.space import Dimension


@dataclass
class WarmPlan:
    """What :func:`apply_warm_start` writes into a new study."""

    source: str  # the earlier study
    storage: str  # its storage, password masked
    mode: str
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # params of trials to run
    history: list[FrozenTrial] = field(default_factory=list)  # finished trials to add
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the parent run's tag and the progress output."""
        if self.mode == "history":
            what = f"{len(self.history)} finished trials of study {self.source} added as history"
        else:
            what = f"the {len(self.enqueue)} best trials of study {self.source} enqueued"
        notes = f"; {'; '.join(self.notes)}" if self.notes else ""
        return f"warm start: {what} ({self.storage}){notes}"


def started(storage_url: str, study_name: str) -> bool:
    """Whether study ``study_name`` exists in ``storage_url`` with trials (read only: a
    storage file that does not exist yet holds no study)."""
    import optuna

    from nnsweep.stores import journal_path, sqlite_path
    from nnsweep.study.storage import open_storage

    path = journal_path(storage_url) or sqlite_path(storage_url)
    if path is not None and not path.exists():
        return False
    try:
        found = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    except KeyError:
        return False
    return bool(found.get_trials(deepcopy=False))


def plan_warm_start(
    spec: SweepSpec,
    dataset: Dataset,
    storage_url: str,
    study_name: str,
    warm_storage: str | None = None,
) -> WarmPlan | None:
    """The warm start ``spec.warm_start`` asks for, mapped into ``spec``'s space; None when
    the sweep has none, or study ``study_name`` has trials already (a resume, or workers
    started after their parent applied it). Reads the earlier study only.

    Args:
        warm_storage: the earlier study's storage (``--warm-start-storage``); default the
            sweep file's ``warm_start.storage``, else ``storage_url``.

    Raises:
        StudyNotFoundError: the earlier study is not in its storage.
        SpecError: ``mode: history`` from a study that is not comparable, or it has no
            COMPLETE trial.
    """
    from nnsweep.study.comparable import comparable_settings, differences, settings_of_spec
    from nnsweep.study.storage import load_study

    section = spec.warm_start
    if section is None or started(storage_url, study_name):
        return None
    url = warm_storage or section.storage or storage_url
    earlier = load_study(section.study, url)
    plan = WarmPlan(section.study, mask_url(url), section.mode)
    trials = ranked(earlier)
    if not trials:
        raise SpecError(
            f"warm_start.study: study {section.study!r} has no COMPLETE trial to start from; "
            "finish it first or drop warm_start"
        )
    dims = spec.grid_dims()
    if section.mode == "enqueue":
        for t in trials[: section.top]:
            params, _ = map_params(_full_params(t), dims, plan.notes)
            plan.enqueue.append(params)
        return plan
    _check_same_objectives(spec, earlier)
    stored = earlier.user_attrs.get(COMPARABLE_ATTR) or settings_of_spec(
        earlier.user_attrs.get(SPEC_ATTR)
    )
    diff = differences(stored, comparable_settings(spec, dataset))
    if diff or not stored:
        changed = ", ".join(f"{k} {old!r} (now {new!r})" for k, (old, new) in diff.items())
        raise SpecError(
            f"warm_start.mode: history needs a study with the same data, task and objective, "
            f"but study {section.study!r} was run with {changed or 'unknown settings'}; use "
            "mode: enqueue to start from its best trials instead"
        )
    plan.history, skipped = history_trials(trials, dims, section.study)
    if skipped:
        plan.notes.append(f"{skipped} trial(s) outside the new space left out")
    return plan


def _check_same_objectives(spec: SweepSpec, earlier: optuna.Study) -> None:
    """History trials carry the earlier study's values: it must optimise what this sweep
    does, one objective or the same two (``objective.also``).

    Raises:
        SpecError: naming both, and the fix.
    """
    from nnsweep.study.objectives import ALSO_METRICS, also_metric

    also = spec.objective.also
    wanted = ALSO_METRICS[also] if also is not None else None
    had = also_metric(earlier)
    if had == wanted:
        return
    them = f"trades it against {had}" if had else "is single-objective"
    now = f"objective.also is {also}" if also else "this sweep has no objective.also"
    raise SpecError(
        f"warm_start.mode: history needs a study with the same objectives, but study "
        f"{earlier.study_name!r} {them} and {now}; use mode: enqueue to start from its best "
        "trials instead"
    )


def start_new_study(
    study: optuna.Study, start: list[dict[str, Any]], plan: WarmPlan | None
) -> bool:
    """Enqueue the sweep file's ``start_with`` configurations (``start``, as
    :func:`nnsweep.spec.start.start_points` gives them), then write the warm start ``plan``,
    if ``study`` has no trial yet; returns whether it did. Called under the start-up lock, so
    of N workers starting at once only the first writes."""
    if study.get_trials(deepcopy=False) or not (start or plan):
        return False
    for params in start:
        study.enqueue_trial(params, skip_if_exists=True)
    if plan is not None:
        _write_plan(study, plan)
    return True


def apply_warm_start(study: optuna.Study, plan: WarmPlan) -> bool:
    """Write ``plan`` into ``study`` if it has no trial yet; returns whether it did."""
    return start_new_study(study, [], plan)


def _write_plan(study: optuna.Study, plan: WarmPlan) -> None:
    if plan.mode == "history":
        study.add_trials(plan.history)
    else:
        for params in plan.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    study.set_user_attr(WARM_START_KEY, plan.describe()[:5000])


def _full_params(trial: FrozenTrial) -> dict[str, Any]:
    """Every hyperparameter of ``trial``, fixed ones included (nnsweep records them)."""
    return {**trial.params, **dict(trial.user_attrs.get(PARAMS_ATTR) or {})}


_UNKNOWN = object()


def map_params(
    params: Mapping[str, Any], dims: Mapping[str, Dimension], notes: list[str]
) -> tuple[dict[str, Any], bool]:
    """``params`` of an earlier trial as the new space draws them: only the dimensions that
    vary now, each value mapped in. Returns (params, whether all mapped exactly); a note per
    dimension that did not map is added to ``notes`` (once each)."""
    out: dict[str, Any] = {}
    exact = True

    def note(text: str) -> None:
        if text not in notes:
            notes.append(text)

    n_layers = None
    for name, dim in dims.items():
        keys = [name] if name != "units" else [k for k in params if k.startswith("units_")]
        if name == "units" and n_layers is not None:
            keys = [f"units_{i}" for i in range(n_layers)]
        for key in keys:
            if key not in params:
                if isinstance(dim, Fixed) and EARLIER_VALUES.get(key, _UNKNOWN) == dim.value:
                    continue  # a study from before the dimension existed trained with this
                exact = False  # its earlier value is unknown
                if not dim.is_fixed:
                    note(f"{key}: not in the earlier study, drawn by the sampler")
                continue
            value, how = map_value(params[key], dim)
            if how:
                note(f"{name}: {how}")
            if value is None or value != params[key]:
                exact = False  # a history trial must lie in the new space as it is
            if value is not None and not dim.is_fixed:
                out[key] = value
            if name == "n_layers":
                n_layers = int(value if value is not None else params[key])
    return out, exact


def map_value(value: Any, dim: Dimension) -> tuple[Any, str]:
    """``value`` in dimension ``dim``: (mapped value or None, what was done or "")."""
    from nnsweep.spec.space import Choice, Fixed, FloatRange, IntRange

    if isinstance(dim, Fixed):
        if value != dim.value:
            return dim.value, f"fixed at {dim.value} now, earlier values dropped"
        return value, ""
    if isinstance(dim, Choice):
        if value in dim.choices:
            return value, ""
        numeric = [c for c in dim.choices if isinstance(c, int | float)]
        if isinstance(value, int | float) and len(numeric) == len(dim.choices):
            nearest = min(numeric, key=lambda c: abs(c - value))
            return nearest, "moved to the nearest choice"
        return None, f"{value!r} is no longer a choice, drawn by the sampler"
    if isinstance(dim, IntRange | FloatRange):
        number = float(value)
        clipped = min(max(number, dim.low), dim.high)
        if dim.step:
            clipped = dim.low + round((clipped - dim.low) / dim.step) * dim.step
            clipped = min(clipped, dim.largest())
        if isinstance(dim, IntRange):
            clipped = int(round(clipped))
        how = "clipped into the new range" if not math.isclose(clipped, number) else ""
        return clipped, how
    return None, "not mapped"


def history_trials(
    trials: list[FrozenTrial], dims: Mapping[str, Dimension], source: str
) -> tuple[list[FrozenTrial], int]:
    """Copies of ``trials`` for the new space (only those that lie in it as they are), and
    how many were left out."""
    import optuna

    distributions = _distributions(dims)
    out, skipped = [], 0
    for t in trials:
        full = _full_params(t)
        params, exact = map_params(full, dims, [])
        if not exact:
            skipped += 1
            continue
        out.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[dimension_of(k)] for k in params},
                values=t.values,  # one value, or [primary, second] (same objectives)
                user_attrs={HISTORY_ATTR: f"{source}#{t.number}", PARAMS_ATTR: full},
            )
        )
    return out, skipped


def _distributions(dims: Mapping[str, Dimension]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from nnsweep.spec.space import Choice, FloatRange, IntRange

    out: dict[str, Any] = {}
    for name, dim in dims.items():
        if isinstance(dim, Choice):
            out[name] = CategoricalDistribution(list(dim.choices))
        elif isinstance(dim, IntRange):
            out[name] = IntDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
        elif isinstance(dim, FloatRange):
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
    return out
