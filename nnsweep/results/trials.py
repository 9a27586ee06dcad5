"""The trials table: every trial of a study joined with its MLflow run's fit diagnosis.

:func:`trials_frame` reads the Optuna study (state, params, value, duration) and each trial's
MLflow child run (the metrics and tag ``nnsweep.fit`` of :mod:`nnsweep.train.diagnosis`) into one
pandas frame; :mod:`nnsweep.results.report` renders it. Trials that stepped back before training
because other workers had filled the target (``nnsweep.surplus``) have no run and are left out.

A trial the pruner stopped is in the ``pruned`` group whatever its run's tag says: runs logged
before the tag existed carry the verdict of a history cut short (often ``underfit``), which is
no verdict on the hyperparameters, so it must not count among the fits.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnsweep.errors import NoCompleteTrialError, StorageError
from nnsweep.names import (
    COMPARABLE_ATTR,
    EXPERIMENT_ATTR,
    FIT_RULE_TAG,
    FIT_TAG,
    OBJECTIVE_ATTR,
    PARAMS_ATTR,
    RUN_ID_ATTR,
    SPEC_ATTR,
    SURPLUS_ATTR,
)
from nnsweep.study.front import own_front
from nnsweep.study.objectives import (
    also_metric,
    is_multi,
    primary_direction,
    primary_value,
    trial_also,
)
from nnsweep.tasks import (
    BINARY,
    MAXIMIZE,
    MULTICLASS,
    OBJECTIVE_DIRECTIONS,
    REGRESSION,
    is_digit_study,
    task_of,
)
from nnsweep.track.tracker import PARENT_TAG, open_reader
from nnsweep.train.diagnosis import FIT_TAGS, PRUNED
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

NO_FIT = "none"  # a trial with no diagnosis: it finished no usable epoch
VAL_SIZE_PARAM = "val_size"  # logged on each sweep's parent run
# the diagnosis columns of a classification study (accuracy rules of nnsweep.diagnosis)
DIAGNOSIS_COLUMNS = (
    "best_val_accuracy",
    "final_val_accuracy",
    "gap_accuracy",
    "gap_loss",
    "val_loss_rise",
    "best_epoch",
)
# a regression study's (loss rules), with the last epoch's val_mae
REGRESSION_COLUMNS = (
    "best_val_loss",
    "final_val_loss",
    "final_val_mae",
    "loss_ratio",
    "train_r2",
    "gap_loss",
    "val_loss_rise",
    "best_epoch",
)
# binary studies add the last epoch's val_auc after the accuracy columns
BINARY_COLUMNS = (*DIAGNOSIS_COLUMNS[:3], "final_val_auc", *DIAGNOSIS_COLUMNS[3:])
# ``final_<curve>`` columns that are no diagnosis metric: the run's last value of the curve
_LAST_OF = {"final_val_mae": "val_mae", "final_val_auc": "val_auc"}
_SEARCH_CHUNK = 100


@dataclass(frozen=True)
class Scoring:
    """How a study's trials were scored, which decides the columns that describe them.

    ``kind``: the task (``binary``, ``multiclass``, ``regression``); ``metric``, ``reduce`` and
    ``direction``: the objective (the trials' ``value`` is ``metric`` at the ``reduce`` epoch,
    best first in ``direction``; on a multi-objective study the primary one); ``unit``: what
    the validation split counts (``images`` for the digit datasets, ``rows`` for tables);
    ``also``: a multi-objective study's second metric (``params``, ``latency_ms``; minimised),
    None for one objective.
    """

    kind: str = MULTICLASS
    metric: str = "val_accuracy"
    reduce: str = "best"
    direction: str = MAXIMIZE
    unit: str = "images"
    also: str | None = None

    @property
    def is_classification(self) -> bool:
        return self.kind != REGRESSION

    @property
    def columns(self) -> tuple[str, ...]:
        """The diagnosis columns of the trials frame, in order."""
        if self.kind == REGRESSION:
            return REGRESSION_COLUMNS
        return BINARY_COLUMNS if self.kind == BINARY else DIAGNOSIS_COLUMNS

    @property
    def value_label(self) -> str:
        """What ``value`` holds, as a column header: ``best val_mae``, ``last val_accuracy``."""
        return f"{self.reduce} {self.metric}"

    @property
    def curve_metric(self) -> str:
        """The per-epoch metric the overlay draws: the objective's (``val_auc`` → ``auc``), or
        the task's own when the objective is the loss (``accuracy``, ``mae``)."""
        if self.metric != "val_loss":
            return self.metric.removeprefix("val_")
        return "accuracy" if self.is_classification else "mae"

    @property
    def gap_column(self) -> str:
        """The train/validation gap column: worst overfitter first when sorted descending."""
        return "gap_accuracy" if self.is_classification else "loss_ratio"

    @property
    def fit_score(self) -> tuple[str, bool]:
        """(column, ascending) that puts the worst underfitter first."""
        return ("best_val_accuracy", True) if self.is_classification else ("best_val_loss", False)

    def as_dict(self) -> dict[str, str]:
        out = {"task": self.kind, "metric": self.metric, "reduce": self.reduce,
               "direction": self.direction}  # fmt: skip
        if self.also is not None:
            out["also"] = self.also
        return out


def scoring_of(study: optuna.Study, runs: dict[str, Run] | None = None) -> Scoring:
    """The :class:`Scoring` of ``study``: its task and objective as the sweep stored them.

    Studies made before the task was stored are told by their objective metric (``val_mae``:
    regression, ``val_auc``: binary), then by what their runs logged (``best_val_loss`` without
    ``best_val_accuracy``: regression), else they are digit studies (multiclass).
    """
    attrs = study.user_attrs
    metric = str(attrs.get(OBJECTIVE_ATTR) or "val_accuracy")
    comparable = attrs.get(COMPARABLE_ATTR) or {}
    stored = (attrs.get(SPEC_ATTR) or {}).get("objective")
    reduce = comparable.get("objective.reduce") or (
        stored.get("reduce") if isinstance(stored, dict) else None
    )
    kind = task_of(attrs)
    if kind is None:
        logged = [set(r.data.metrics) for r in (runs or {}).values()]
        loss_rules = any("best_val_loss" in m for m in logged)
        accuracy_rules = any("best_val_accuracy" in m for m in logged)
        kind = REGRESSION if loss_rules and not accuracy_rules else MULTICLASS
    return Scoring(
        kind=kind,
        metric=metric,
        reduce=str(reduce or "best"),
        direction=primary_direction(study),
        unit="images" if kind == MULTICLASS and is_digit_study(attrs) else "rows",
        also=also_metric(study),
    )


def _experiment_ids(client: MlflowClient, study: optuna.Study) -> list[str]:
    """The experiments that may hold the study's runs: the one the sweep recorded, by id and
    by the sweep's name (a study resumed against another store has a stale id)."""
    from mlflow.exceptions import MlflowException

    ids: list[str] = []
    exp_id = study.user_attrs.get(EXPERIMENT_ATTR)
    if exp_id is not None:
        try:
            ids.append(str(client.get_experiment(str(exp_id)).experiment_id))
        except MlflowException:
            pass
    name = (study.user_attrs.get(SPEC_ATTR) or {}).get("name", study.study_name)
    exp = client.get_experiment_by_name(str(name))
    if exp is not None and str(exp.experiment_id) not in ids:
        ids.append(str(exp.experiment_id))
    return ids


def fetch_runs(client: MlflowClient, study: optuna.Study, run_ids: list[str]) -> dict[str, Run]:
    """The MLflow runs with these ids (those the store holds), by run id."""
    exp_ids = _experiment_ids(client, study)
    found: dict[str, Run] = {}
    if not exp_ids:
        return found
    for i in range(0, len(run_ids), _SEARCH_CHUNK):
        chunk = run_ids[i : i + _SEARCH_CHUNK]
        quoted = ", ".join(f"'{r}'" for r in chunk)
        for run in client.search_runs(
            exp_ids, filter_string=f"attributes.run_id IN ({quoted})", max_results=len(chunk)
        ):
            found[run.info.run_id] = run
    return found


def reported_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that belong in a report: all but the surplus ones."""
    from nnsweep.study.own import is_history  # history from a warm start: not run here

    trials = study.get_trials(deepcopy=False)
    return [t for t in trials if not t.user_attrs.get(SURPLUS_ATTR) and not is_history(t)]


def _val_sizes(client: MlflowClient, study: optuna.Study, runs: dict[str, Run]) -> dict[str, float]:
    """Validation-split size by child run id, read from the ``val_size`` param of the parent
    run (one per ``nnsweep run``) that each child hangs under; absent where unknown."""
    parents = {run.data.tags.get(PARENT_TAG) for run in runs.values()} - {None}
    sizes: dict[str, float] = {}
    for pid, parent in fetch_runs(client, study, sorted(str(p) for p in parents)).items():
        try:
            sizes[pid] = float(parent.data.params[VAL_SIZE_PARAM])
        except (KeyError, ValueError):
            continue
    return {
        rid: sizes[str(run.data.tags.get(PARENT_TAG))]
        for rid, run in runs.items()
        if str(run.data.tags.get(PARENT_TAG)) in sizes
    }


def trials_frame(study: optuna.Study, client: MlflowClient) -> pd.DataFrame:
    """One row per trial: Optuna's view joined with the diagnosis on its MLflow run.

    Columns: ``trial``, ``state``, ``value`` (the objective value the trial was scored with; NaN
    unless COMPLETE; a multi-objective study's primary value, then ``also``, its second value,
    pruned trials' too where measured, and ``pareto``, True for the trials on the Pareto front,
    :mod:`nnsweep.study.front`), one ``params.<name>`` per hyperparameter, the diagnosis columns
    of the study's task (:attr:`Scoring.columns`: accuracy ones for classification, loss ones
    and the last ``val_mae`` for regression), ``val_size`` (images or rows in the validation
    split the trial was scored on; NaN when its sweep did not log it; under cross-validation the
    training rows, each validated once, and then ``cv_std``, the standard deviation over folds
    of the value, and ``cv_folds`` follow ``value``), ``fit`` (``underfit``, ``good``,
    ``generalisation_gap``, ``overfit``; ``pruned`` for every PRUNED trial; ``none`` when
    undiagnosed), ``fit_rule`` (the figure that decided it, e.g. ``val_loss_rise 0.274 > 0.15``;
    tag ``nnsweep.fit_rule``), ``epochs``, ``duration_s`` and ``run_id``. Rows are in trial
    order.

    Raises:
        NoCompleteTrialError: the study has no trial yet.
        StorageError: trials have MLflow run ids but the store holds none of those runs.
    """
    return scored_frame(study, client)[1]


def scored_frame(study: optuna.Study, client: MlflowClient) -> tuple[Scoring, pd.DataFrame]:
    """(:func:`scoring_of` the study, :func:`trials_frame`): the frame and how to read it.

    Raises:
        NoCompleteTrialError, StorageError: as :func:`trials_frame`.
    """
    import pandas as pd
    from optuna.trial import TrialState

    trials = reported_trials(study)
    if not trials:
        raise NoCompleteTrialError(
            f"study {study.study_name!r} has no trials yet; run it with `nnsweep run SWEEP`"
        )
    run_ids = [str(t.user_attrs[RUN_ID_ATTR]) for t in trials if RUN_ID_ATTR in t.user_attrs]
    runs = fetch_runs(client, study, run_ids)
    if run_ids and not runs:
        raise StorageError(
            f"tracking store {mask_url(str(client.tracking_uri))} holds none of the "
            f"{len(run_ids)} runs of study {study.study_name!r}; pass the --tracking-uri "
            "(or MLFLOW_TRACKING_URI) the sweep logged to"
        )
    size_of = _val_sizes(client, study, runs)
    scoring = scoring_of(study, runs)
    columns = scoring.columns
    front = _front_numbers(study)
    rows = []
    for t in trials:
        run_id = t.user_attrs.get(RUN_ID_ATTR)
        run = runs.get(str(run_id)) if run_id else None
        metrics = run.data.metrics if run else {}
        params = t.user_attrs.get(PARAMS_ATTR) or t.params
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            "value": _or_nan(primary_value(t) if t.state == TrialState.COMPLETE else None),
        }
        if front is not None:
            row["also"], row["pareto"] = _or_nan(trial_also(t)), t.number in front
        row.update({f"params.{k}": v for k, v in params.items()})
        row.update({k: metrics.get(_LAST_OF.get(k, k), math.nan) for k in columns})
        row["val_size"] = size_of.get(str(run_id), math.nan)
        # a cross-validated trial (nnsweep.train.cv): its value is the folds' mean; their std
        row["cv_std"] = next((v for k, v in metrics.items() if k.startswith("cv_std_")), math.nan)
        row["cv_folds"] = metrics.get("cv_folds", math.nan)
        if t.state == TrialState.PRUNED:
            row["fit"], row["fit_rule"] = PRUNED, ""
        else:
            row["fit"] = run.data.tags.get(FIT_TAG, NO_FIT) if run else NO_FIT
            row["fit_rule"] = run.data.tags.get(FIT_RULE_TAG, "") if run else ""
        row["epochs"] = metrics.get("epochs_run", math.nan)
        row["duration_s"] = t.duration.total_seconds() if t.duration is not None else math.nan
        row["run_id"] = run_id or ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame["cv_std"].isna().all():  # holdout studies keep their columns
        frame = frame.drop(columns=["cv_std", "cv_folds"])
    tail = [*columns, "val_size", "fit", "fit_rule", "epochs", "duration_s", "run_id"]
    mo = ["also", "pareto"] if front is not None else []
    head = ["trial", "state", "value", *mo, *(["cv_std", "cv_folds"] if "cv_std" in frame else [])]
    middle = [c for c in frame.columns if c not in head and c not in tail]
    return scoring, frame[head + middle + tail]


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _front_numbers(study: optuna.Study) -> set[int] | None:
    """The numbers of a multi-objective study's Pareto-front trials; None for one objective."""
    if not is_multi(study):
        return None
    return {t.number for t in own_front(study)}


def val_sizes(frame: pd.DataFrame) -> list[int]:
    """The distinct validation-split sizes of the frame's trials, smallest first (empty when
    no sweep logged one; more than one when a study mixes splits)."""
    return sorted({int(v) for v in frame["val_size"] if not math.isnan(v)})


def resolve_column(frame: pd.DataFrame, column: str) -> str:
    """``column`` as a column of ``frame``; a bare param name means ``params.<name>``.

    Raises:
        ValueError: no such column (the message lists them).
    """
    if column in frame.columns:
        return column
    if f"params.{column}" in frame.columns:
        return f"params.{column}"
    raise ValueError(f"no column {column!r}; sort by one of {', '.join(frame.columns)}")


def sort_trials(
    frame: pd.DataFrame,
    column: str = "value",
    *,
    direction: str = "maximize",
    reverse: bool = False,
) -> pd.DataFrame:
    """Rows in a useful order: ``value`` best first (by ``direction``), ``also`` (a second
    objective) smallest first, ``pareto`` front trials first, a validation score
    (``best_val_loss``, ``final_val_mae``, ``final_val_accuracy``, …) best first by its own
    direction, ``trial`` and text columns ascending, other numbers largest first (the worst
    overfitter by ``gap_accuracy``); NaN always last; ``reverse`` flips it.

    Raises:
        ValueError: no such column.
    """
    import pandas as pd

    col = resolve_column(frame, column)
    score = col.partition("_")[2] if col.startswith(("best_val_", "final_val_")) else ""
    if col == "value":
        ascending = direction == "minimize"
    elif col == "also":  # a second objective is minimised: smallest first
        ascending = True
    elif score in OBJECTIVE_DIRECTIONS:
        ascending = OBJECTIVE_DIRECTIONS[score] != MAXIMIZE
    elif col == "trial" or not pd.api.types.is_numeric_dtype(frame[col]):
        ascending = True
    else:
        ascending = False
    if reverse:
        ascending = not ascending
    keys = [col] if col == "trial" else [col, "trial"]
    return frame.sort_values(
        keys, ascending=[ascending, True][: len(keys)], na_position="last", kind="stable"
    ).reset_index(drop=True)


def fit_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Runs by fit group: every verdict (``underfit``, ``good``, ``generalisation_gap``,
    ``overfit``; always, 0 when none), then ``pruned`` and ``none`` (each when any). Pruned
    trials count only as ``pruned``, never as a fit."""
    counts = Counter(str(f) for f in frame["fit"])
    out: dict[str, int] = {tag: counts.get(tag, 0) for tag in FIT_TAGS}
    for group in (PRUNED, NO_FIT):
        if counts.get(group):
            out[group] = counts[group]
    return out


def study_table(
    study_name: str, storage_url: str, tracking_uri: str
) -> tuple[Scoring, pd.DataFrame]:
    """``nnsweep compare``: (the study's :class:`Scoring`, its trials frame)."""
    from nnsweep.study.storage import load_study

    study = load_study(study_name, storage_url)
    return scored_frame(study, open_reader(tracking_uri))


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame``'s rows as JSON-ready dicts (``compare --json``): params nested under
    ``params`` (only those the trial has), numbers as Python numbers, NaN and inf as ``None``."""
    rows = []
    for record in frame.to_dict(orient="records"):
        row: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for key, raw in record.items():
            value = _plain(raw)
            if str(key).startswith("params."):
                if value is not None:
                    params[str(key).removeprefix("params.")] = value
            else:
                row[str(key)] = value
        row["params"] = params
        rows.append(row)
    return rows


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: numpy scalars unwrapped, non-finite floats as None."""
    value = value.item() if hasattr(value, "item") and not isinstance(value, str) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
