"""The study report: every trial side by side, so over- and underfitting compare across runs.

The table comes from :func:`nnsweep.trials.trials_frame` (Optuna joined with each trial's MLflow
run); this module renders it. :func:`write_report` writes, into one folder:

* ``trials.csv`` (every column, params as ``params.<name>``) and ``trials.md`` (runs by fit
  group, then the table, best trial first);
* ``optimization_history.html``, ``parallel_coordinate.html``, ``param_importances.html``:
  Optuna's plotly figures, self-contained so they open offline and in the MLflow UI;
* ``accuracy_overlay.png``: train vs validation accuracy of the top trials, of the worst
  over- and underfitters, and of the pruned trials (a panel of their own);
* ``fit_counts.csv``: runs by fit group (``pruned`` apart from the three verdicts).

``nnsweep run`` logs the folder under ``report/`` on its parent run (:func:`log_study_report`);
``nnsweep report`` writes it to disk; ``nnsweep compare`` prints the table. Validation scores
are shown with the size of the validation split they were measured on (``n=``): on a few
hundred images one image moves accuracy by a few tenths of a point.

The table's functions (:func:`trials_frame`, :func:`sort_trials`, :func:`fit_counts`, …) are
importable from here too, as before the split.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnosis import PRUNED
from .names import OBJECTIVE_ATTR
from .tracking import fetch_history, open_reader
from .trials import (
    DIAGNOSIS_COLUMNS,
    FIT_TAG,
    NO_FIT,
    RUN_ID_ATTR,
    fetch_runs,
    fit_counts,
    reported_trials,
    resolve_column,
    sort_trials,
    study_table,
    trials_frame,
    val_sizes,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient

    from .tracking import Tracker

__all__ = [
    "COUNTS_CSV",
    "DIAGNOSIS_COLUMNS",
    "FIT_TAG",
    "NO_FIT",
    "OPTUNA_PLOTS",
    "OVERLAY_PNG",
    "REPORT_ARTIFACT_DIR",
    "RUN_ID_ATTR",
    "TABLE_CSV",
    "TABLE_MD",
    "Report",
    "display_frame",
    "fetch_runs",
    "fit_counts",
    "log_study_report",
    "overlay_groups",
    "resolve_column",
    "sort_trials",
    "study_report",
    "study_table",
    "to_markdown",
    "trials_frame",
    "write_report",
]

TABLE_CSV, TABLE_MD, COUNTS_CSV = "trials.csv", "trials.md", "fit_counts.csv"
OVERLAY_PNG = "accuracy_overlay.png"
OPTUNA_PLOTS = {
    "optimization_history.html": ("plot_optimization_history", 1),
    "parallel_coordinate.html": ("plot_parallel_coordinate", 2),
    "param_importances.html": ("plot_param_importances", 2),
}  # file: (optuna.visualization function, COMPLETE trials it needs)
OUTPUTS = (TABLE_CSV, TABLE_MD, COUNTS_CSV, OVERLAY_PNG, *OPTUNA_PLOTS)
REPORT_ARTIFACT_DIR = "report"
TOP_K = 3
WORST = 2


@dataclass
class Report:
    """What :func:`write_report` wrote: file names in ``out``, fit counts, and skipped parts."""

    out: Path
    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_trials: int = 0
    val_sizes: list[int] = field(default_factory=list)  # images in the validation split(s)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def size_label(sizes: list[int]) -> str:
    """`` (n=500)`` for one validation size, ``""`` for none or several (then a column)."""
    return f" (n={sizes[0]})" if len(sizes) == 1 else ""


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it (strings): trial, state, params, best/final val accuracy,
    gap, fit, duration, run id. ``params`` lists only the hyperparameters that vary between
    the trials of ``frame`` (all of them when none does).

    The validation size goes with the scores: in their headers (``best val_acc (n=500)``)
    when the trials share one split, else in a ``val n`` column after them."""
    import pandas as pd

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
        f"best val_acc{n}": [_fmt(v) for v in frame["best_val_accuracy"]],
        f"final val_acc{n}": [_fmt(v) for v in frame["final_val_accuracy"]],
    }
    if len(sizes) > 1:
        columns["val n"] = [_fmt(int(v) if not math.isnan(v) else v) for v in frame["val_size"]]
    return pd.DataFrame(
        {
            **columns,
            "gap": [_fmt(v, 3) for v in frame["gap_accuracy"]],
            "fit": frame["fit"],
            "duration": [
                _fmt(v, 1) + ("s" if not math.isnan(v) else "") for v in frame["duration_s"]
            ],
            "run id": frame["run_id"],
        }
    )


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame``'s cells as text."""

    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(str(c) for c in frame.columns) + " |",
        "|" + "|".join(" --- " for _ in frame.columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines) + "\n"


# -- the figures ------------------------------------------------------------------------------
def overlay_groups(
    frame: pd.DataFrame, direction: str, top_k: int = TOP_K, worst: int = WORST
) -> tuple[list[int], list[int], list[int]]:
    """Trial numbers for the overlay's panels: the ``top_k`` COMPLETE trials by value; the
    ``worst`` overfitters (largest gap) plus the ``worst`` underfitters (lowest best val
    accuracy); and ``top_k`` pruned trials, those that ran the most epochs first. Pruned
    trials are only ever in the last group."""
    complete = frame[(frame["state"] == "COMPLETE") & frame["value"].notna()]
    top = sort_trials(complete, "value", direction=direction)["trial"].head(top_k).tolist()
    over = frame[frame["fit"] == "overfit"].sort_values(
        ["gap_accuracy", "trial"], ascending=[False, True], na_position="last"
    )
    under = frame[frame["fit"] == "underfit"].sort_values(
        ["best_val_accuracy", "trial"], ascending=[True, True], na_position="last"
    )
    bad = over["trial"].head(worst).tolist() + under["trial"].head(worst).tolist()
    pruned = frame[frame["fit"] == PRUNED].sort_values(
        ["epochs", "trial"], ascending=[False, True], na_position="last"
    )
    cut = pruned["trial"].head(top_k).tolist()
    return [int(n) for n in top], [int(n) for n in bad], [int(n) for n in cut]


def _write_overlay(
    frame: pd.DataFrame,
    client: MlflowClient,
    direction: str,
    path: Path,
    study_name: str,
    top_k: int = TOP_K,
) -> bool:
    from .plots import Curves, accuracy_overlay, save

    top, bad, pruned = overlay_groups(frame, direction, top_k=top_k)
    if not top and not bad and not pruned:
        return False
    by_trial = frame.set_index("trial")
    cache: dict[int, dict[str, list[float]]] = {}

    def curves(numbers: list[int]) -> list[Curves]:
        out = []
        for n in numbers:
            row = by_trial.loc[n]
            if not row["run_id"]:
                continue
            if n not in cache:
                cache[n] = fetch_history(client, str(row["run_id"]))
            if row["fit"] == PRUNED:
                label = f"#{n} pruned after {_fmt(row['epochs'], 0)} epochs"
            else:
                label = f"#{n} {row['fit']} (best val {_fmt(row['best_val_accuracy'], 3)})"
            out.append(Curves(label, cache[n]))
        return out

    panels = [
        (f"top {len(top)} by objective", curves(top)),
        ("worst over/underfitters", curves(bad)),
    ]
    if pruned:  # a study without a pruner gets no empty third panel
        n_pruned = int((frame["fit"] == PRUNED).sum())
        panels.append((f"pruned, no fit verdict ({len(pruned)} of {n_pruned})", curves(pruned)))
    n = size_label(val_sizes(frame))
    fig = accuracy_overlay(panels, title=f"study {study_name}: train vs validation accuracy{n}")
    save(fig, path)
    return True


def _write_optuna_plots(
    study: optuna.Study, out: Path, n_complete: int, target: str
) -> tuple[list[str], list[str]]:
    import optuna
    import optuna.visualization as vis

    written, notes = [], []
    for name, (func, needs) in OPTUNA_PLOTS.items():
        if n_complete < needs:
            notes.append(
                f"{name} skipped: it needs {needs} COMPLETE trial{'s' if needs > 1 else ''}, "
                f"the study has {n_complete}"
            )
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            fig = getattr(vis, func)(study, target_name=target)
        fig.write_html(out / name, include_plotlyjs=True, full_html=True)
        written.append(name)
    return written, notes


def write_report(
    study: optuna.Study, client: MlflowClient, out: str | Path, *, top_k: int = TOP_K
) -> Report:
    """Write the study report into ``out`` (created; earlier report files there are replaced).

    Raises:
        NoCompleteTrialError: the study has no trial yet.
        StorageError: the store holds none of the study's runs.
    """
    from optuna.trial import TrialState

    frame = trials_frame(study, client)
    direction = study.direction.name.lower()
    metric = str(study.user_attrs.get(OBJECTIVE_ATTR, "value"))
    ordered = sort_trials(frame, "value", direction=direction)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # a part skipped now must not leave an old file behind
        (folder / name).unlink(missing_ok=True)

    report = Report(
        out=folder, counts=fit_counts(frame), n_trials=len(frame), val_sizes=val_sizes(frame)
    )
    ordered.to_csv(folder / TABLE_CSV, index=False)
    _counts_frame(report.counts).to_csv(folder / COUNTS_CSV, index=False)
    report.files += [TABLE_CSV, COUNTS_CSV]

    n_complete = int((frame["state"] == TrialState.COMPLETE.name).sum())
    plots, report.notes = _write_optuna_plots(study, folder, n_complete, metric)
    report.files += plots
    if _write_overlay(frame, client, direction, folder / OVERLAY_PNG, study.study_name, top_k):
        report.files.append(OVERLAY_PNG)
    else:
        report.notes.append(
            f"{OVERLAY_PNG} skipped: no COMPLETE, overfit, underfit or pruned trial"
        )

    (folder / TABLE_MD).write_text(
        _markdown_page(study.study_name, direction, metric, ordered, report), encoding="utf-8"
    )
    report.files.insert(1, TABLE_MD)
    return report


def _counts_frame(counts: dict[str, int]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"fit": list(counts), "runs": list(counts.values())})


def _markdown_page(
    study: str, direction: str, metric: str, ordered: pd.DataFrame, report: Report
) -> str:
    states = Counter(ordered["state"])
    state_text = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    sizes = report.val_sizes
    if len(sizes) == 1:
        scored = f", scored on {sizes[0]:,} validation images"
    elif sizes:
        scored = f", scored on validation splits of {' / '.join(f'{n:,}' for n in sizes)} images"
    else:
        scored = ""
    parts = [
        f"# Study {study}",
        "",
        f"{len(ordered)} trials ({state_text}); objective: {direction} {metric}{scored}.",
        "",
        "## Runs by fit group",
        "",
        to_markdown(_counts_frame(report.counts)),
    ]
    if report.counts.get(PRUNED):
        parts += [
            f"`{PRUNED}`: stopped early by the pruner. A history cut short on purpose is no fit",
            "verdict, so these trials are not counted as underfit, good or overfit.",
            "",
        ]
    parts += [
        "## Trials, best first",
        "",
        to_markdown(display_frame(ordered)),
        "## Figures",
        "",
        *[f"- [{name}]({name})" for name in report.files if name.endswith((".html", ".png"))],
    ]
    if report.notes:
        parts += ["", "Not drawn:", "", *[f"- {note}" for note in report.notes]]
    return "\n".join(parts) + "\n"


def log_study_report(study: optuna.Study, tracker: Tracker, parent_run_id: str) -> Report | None:
    """Write the report and log it under ``report/`` on the sweep's parent run.

    Returns ``None`` (and logs nothing) when the study has no trial to report.
    """
    if not reported_trials(study):
        return None
    with tempfile.TemporaryDirectory(prefix="nnsweep-report-") as tmp:
        report = write_report(study, tracker.client, tmp)
        tracker.client.log_artifacts(parent_run_id, tmp, REPORT_ARTIFACT_DIR)
    report.out = Path(REPORT_ARTIFACT_DIR)
    return report


def study_report(study_name: str, storage_url: str, tracking_uri: str, out: str | Path) -> Report:
    """``nnsweep report``: load the study and write its report into ``out``.

    Raises:
        StudyNotFoundError, NoCompleteTrialError, StorageError: as they say.
    """
    from .study import load_study

    study = load_study(study_name, storage_url)
    return write_report(study, open_reader(tracking_uri), out)
