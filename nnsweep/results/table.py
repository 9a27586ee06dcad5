"""The trials table as people read it: text cells, the task's score columns, Markdown.

:func:`display_frame` turns :func:`nnsweep.results.trials.trials_frame` into the strings ``nnsweep
compare`` prints and ``trials.md`` holds; which score columns it shows follows the study's
:class:`~nnsweep.results.trials.Scoring` (accuracy for classification, val_mae and val_loss for
regression). :mod:`nnsweep.results.report` re-exports it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nnsweep.results.trials import Scoring, val_sizes

if TYPE_CHECKING:
    import pandas as pd


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_score(value: Any) -> str:
    """A validation score: 4 decimals, 1 from 1,000 up (a regression error in its units)."""
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 1000:
        return f"{value:,.1f}"
    return fmt(value)


def fmt_also(value: Any) -> str:
    """A second objective's value: a count with thousands separators (``12,345``), a latency
    with 4 significant digits (``0.8123``)."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return fmt(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def also_header(metric: str) -> str:
    """The second objective's column header: ``n_params`` (``params`` heads the params)."""
    return "n_params" if metric == "params" else metric


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def size_label(sizes: list[int]) -> str:
    """`` (n=500)`` for one validation size, ``""`` for none or several (then a column)."""
    return f" (n={sizes[0]})" if len(sizes) == 1 else ""


def display_frame(frame: pd.DataFrame, scoring: Scoring | None = None) -> pd.DataFrame:
    """The table as people read it (strings): trial, state, params, the task's validation
    scores, fit, duration, run id; a multi-objective study adds its second value (headed by
    its metric: ``n_params``, ``latency_ms``) and ``front`` (✓ on the Pareto front) after the
    scores. ``params`` lists only the hyperparameters that vary between
    the trials of ``frame`` (all of them when none does).

    Classification (``scoring`` absent: a digit study): best and final val accuracy and their
    gap, after the objective value when the objective is not ``val_accuracy`` (``best
    val_auc``). Regression: the objective value (``best val_mae``), the last epoch's val_mae,
    best/final val_loss, the loss ratio (validation loss over training loss, minus 1) and the
    training R²; no accuracy. The validation size goes with the scores: in their headers
    (``best val_acc (n=500)``) when the trials share one split, else in a ``val n`` column
    after them."""
    import pandas as pd

    scoring = scoring or Scoring()
    param_cols = [c for c in frame.columns if c.startswith("params.")]
    varying = [c for c in param_cols if frame[c].astype(str).nunique(dropna=False) > 1]
    shown = varying or param_cols

    def params_of(row: pd.Series) -> str:
        return " ".join(
            f"{c.removeprefix('params.')}={_short(row[c])}"
            for c in shown
            if not (isinstance(row[c], float) and math.isnan(row[c]))
        )

    sizes = val_sizes(frame)
    n = size_label(sizes)
    columns: dict[str, Any] = {
        "trial": frame["trial"].astype(str),
        "state": frame["state"],
        "params": [params_of(row) for _, row in frame.iterrows()],
    }
    scores = _score_columns(scoring)
    if "cv_std" in frame:  # cross-validated: the value is the folds' mean, this their std
        columns["± folds"] = [fmt_score(v) for v in frame["cv_std"]]
    columns |= {f"{label}{n}": [fmt_score(v) for v in frame[col]] for label, col in scores}
    if scoring.also is not None and "also" in frame:  # multi-objective: the second value
        columns[also_header(scoring.also)] = [fmt_also(v) for v in frame["also"]]
        columns[FRONT_COLUMN] = [FRONT_MARK if bool(v) else "" for v in frame["pareto"]]
    if len(sizes) > 1:
        columns["val n"] = [fmt(int(v) if not math.isnan(v) else v) for v in frame["val_size"]]
    gaps = [("gap", "gap_accuracy")] if scoring.is_classification else _REGRESSION_GAPS
    columns |= {label: [fmt(v, 3) for v in frame[col]] for label, col in gaps}
    return pd.DataFrame(
        {
            **columns,
            "fit": frame["fit"],
            "fit by": frame["fit_rule"] if "fit_rule" in frame else "",
            "duration": [
                fmt(v, 1) + ("s" if not math.isnan(v) else "") for v in frame["duration_s"]
            ],
            "run id": frame["run_id"],
        }
    )


_REGRESSION_GAPS = [("loss ratio", "loss_ratio"), ("train R²", "train_r2")]
# display columns that hold text; every other one is a number (right-aligned by compare)
TEXT_COLUMNS = ("state", "params", "front", "fit", "fit by", "run id")
FRONT_COLUMN, FRONT_MARK = "front", "✓"  # a multi-objective study's Pareto-front trials


def _score_columns(scoring: Scoring) -> list[tuple[str, str]]:
    """(header, frame column) of the validation scores ``display_frame`` shows, in order."""
    value = [(scoring.value_label, "value")]
    if scoring.is_classification:
        accuracy = [("best val_acc", "best_val_accuracy"), ("final val_acc", "final_val_accuracy")]
        if scoring.metric == "val_accuracy":
            return accuracy
        if scoring.metric == "val_auc":
            value.append(("final val_auc", "final_val_auc"))
        return value + accuracy
    out = [*value, ("final val_mae", "final_val_mae")]
    if scoring.metric != "val_loss":
        out.append(("best val_loss", "best_val_loss"))
    return [*out, ("final val_loss", "final_val_loss")]


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame``'s cells as text."""

    def cell(v: Any) -> str:
        return fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(str(c) for c in frame.columns) + " |",
        "|" + "|".join(" --- " for _ in frame.columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines) + "\n"
