"""The study report: every trial side by side, so over- and underfitting compare across runs.

The table comes from :func:`nnsweep.results.trials.trials_frame` (Optuna joined with each trial's
MLflow
run); this module renders it. :func:`write_report` writes, into one folder:

* ``trials.csv`` (every column, params as ``params.<name>``) and ``trials.md`` (runs by fit
  group, then the table, best trial first);
* ``optimization_history.html``, ``parallel_coordinate.html``, ``param_importances.html``:
  Optuna's plotly figures, self-contained so they open offline and in the MLflow UI;
* ``accuracy_overlay.png`` (``mae_overlay.png`` for regression, ``auc_overlay.png`` for a
  ``val_auc`` objective): the task's metric on the training data (dropout off, where the run
  has the ``train_eval_*`` curve) vs validation, for the top trials, the worst over- and
  underfitters, and the pruned trials (a panel of their own);
* ``fit_counts.csv``: runs by fit group (``pruned`` apart from the three verdicts);
* a multi-objective study's Pareto front (:mod:`nnsweep.results.pareto`): ``pareto_front.png``,
  ``pareto_front.html`` (each trial's MLflow run link in its hover; a click opens it) and
  ``pareto_front.json``. Optuna's plots and the importances read the primary objective.

``nnsweep run`` logs the folder under ``report/`` on its parent run (:func:`log_study_report`);
``nnsweep report`` writes it to disk; ``nnsweep compare`` prints the table. Validation scores
are shown with the size of the validation split they were measured on (``n=``): on a few
hundred images one image moves accuracy by a few tenths of a point.

Columns, order and figures follow the study's task and objective (:class:`Scoring`): trials are
ranked by the value Optuna scored them with, best first in the objective's direction;
classification shows best/final val accuracy and the accuracy gap, regression the objective,
the last ``val_mae``, best/final ``val_loss``, the loss ratio and the training R².

The table's functions (:func:`trials_frame`, :func:`sort_trials`, :func:`fit_counts`, …) are
importable from here too, as before the split.
"""

from __future__ import annotations

import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nnsweep.results.importance import Learned, log_learned, write_learned
from nnsweep.results.pareto import FRONT_HTML, FRONT_PNG, Front, read_front, write_front
from nnsweep.results.pareto import OUTPUTS as FRONT_OUTPUTS
from nnsweep.results.table import (
    TEXT_COLUMNS,
    display_frame,
    fmt,
    fmt_also,
    fmt_score,
    size_label,
    to_markdown,
)
from nnsweep.results.trials import (
    DIAGNOSIS_COLUMNS,
    FIT_TAG,
    NO_FIT,
    RUN_ID_ATTR,
    Scoring,
    fetch_runs,
    fit_counts,
    reported_trials,
    resolve_column,
    scored_frame,
    sort_trials,
    study_table,
    trials_frame,
    val_sizes,
)
from nnsweep.track.tracker import fetch_history, open_reader
from nnsweep.train.diagnosis import FIT_TAGS, PRUNED

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient

    from nnsweep.track.tracker import Tracker

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
    "TEXT_COLUMNS",
    "Report",
    "Scoring",
    "display_frame",
    "fetch_runs",
    "fit_counts",
    "log_study_report",
    "overlay_name",
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
OVERLAY_PNG = "accuracy_overlay.png"  # a classification study's overlay
OPTUNA_PLOTS = {
    "optimization_history.html": ("plot_optimization_history", 1),
    "parallel_coordinate.html": ("plot_parallel_coordinate", 2),
    "param_importances.html": ("plot_param_importances", 2),
}  # file: (optuna.visualization function, COMPLETE trials it needs)


def overlay_name(metric: str) -> str:
    """The overlay figure's file for a curve ``metric``: ``accuracy_overlay.png``, ``mae_…``."""
    return f"{metric}_overlay.png"


OVERLAYS = tuple(overlay_name(m) for m in ("accuracy", "auc", "mae"))
OUTPUTS = (TABLE_CSV, TABLE_MD, COUNTS_CSV, *OVERLAYS, *OPTUNA_PLOTS, *FRONT_OUTPUTS)
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
    scoring: Scoring = field(default_factory=Scoring)  # the study's task and objective
    learned: Learned | None = None  # importances and bound warnings (results/importance.py)
    front: Front | None = None  # a multi-objective study's Pareto front (results/pareto.py)


# -- the figures ------------------------------------------------------------------------------
def overlay_groups(
    frame: pd.DataFrame, scoring: Scoring, top_k: int = TOP_K, worst: int = WORST
) -> tuple[list[int], list[int], list[int]]:
    """Trial numbers for the overlay's panels: the ``top_k`` COMPLETE trials by value (best
    first in the objective's direction); the ``worst`` overfitters (largest gap: accuracy gap,
    or loss ratio for regression) plus the ``worst`` underfitters (lowest best val accuracy, or
    highest best val loss); and ``top_k`` pruned trials, those that ran the most epochs first.
    Pruned trials are only ever in the last group."""
    complete = frame[(frame["state"] == "COMPLETE") & frame["value"].notna()]
    top = sort_trials(complete, "value", direction=scoring.direction)["trial"].head(top_k)
    over = frame[frame["fit"] == "overfit"].sort_values(
        [scoring.gap_column, "trial"], ascending=[False, True], na_position="last"
    )
    score, ascending = scoring.fit_score
    under = frame[frame["fit"] == "underfit"].sort_values(
        [score, "trial"], ascending=[ascending, True], na_position="last"
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
    scoring: Scoring,
    path: Path,
    study_name: str,
    top_k: int = TOP_K,
) -> bool:
    from nnsweep.train.plots import Curves, accuracy_overlay, save

    top, bad, pruned = overlay_groups(frame, scoring, top_k=top_k)
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
                label = f"#{n} pruned after {fmt(row['epochs'], 0)} epochs"
            elif scoring.is_classification and scoring.metric == "val_accuracy":
                label = f"#{n} {row['fit']} (best val {fmt(row['best_val_accuracy'], 3)})"
            else:
                label = f"#{n} {row['fit']} ({scoring.value_label} {fmt_score(row['value'])})"
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
    metric = scoring.curve_metric
    title = f"study {study_name}: train vs validation {metric}{n}"
    save(accuracy_overlay(panels, title=title, metric=metric), path)
    return True


def _write_optuna_plots(
    study: optuna.Study, out: Path, n_complete: int, target: str
) -> tuple[list[str], list[str]]:
    import optuna
    import optuna.visualization as vis

    from nnsweep.study.objectives import is_multi

    # a multi-objective study: each plot reads the primary objective
    primary = {"target": lambda t: t.values[0]} if is_multi(study) else {}
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
            fig = getattr(vis, func)(study, target_name=target, **primary)
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

    scoring, frame = scored_frame(study, client)
    direction = scoring.direction
    ordered = sort_trials(frame, "value", direction=direction)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # a part skipped now must not leave an old file behind
        (folder / name).unlink(missing_ok=True)

    report = Report(
        out=folder,
        counts=fit_counts(frame),
        n_trials=len(frame),
        val_sizes=val_sizes(frame),
        scoring=scoring,
    )
    ordered.to_csv(folder / TABLE_CSV, index=False)
    _counts_frame(report.counts).to_csv(folder / COUNTS_CSV, index=False)
    report.files += [TABLE_CSV, COUNTS_CSV]

    n_complete = int((frame["state"] == TrialState.COMPLETE.name).sum())
    plots, report.notes = _write_optuna_plots(study, folder, n_complete, scoring.metric)
    report.files += plots
    overlay = overlay_name(scoring.curve_metric)
    if _write_overlay(frame, client, scoring, folder / overlay, study.study_name, top_k):
        report.files.append(overlay)
    else:
        report.notes.append(f"{overlay} skipped: no COMPLETE, overfit, underfit or pruned trial")

    report.learned, learned_files = write_learned(study, folder)  # what mattered
    report.files += learned_files
    if scoring.also is not None:  # multi-objective: the front, drawn
        report.front = read_front(study, client)
        report.files += write_front(report.front, folder)
    (folder / TABLE_MD).write_text(
        _markdown_page(study.study_name, ordered, report), encoding="utf-8"
    )
    report.files.insert(1, TABLE_MD)
    return report


def _counts_frame(counts: dict[str, int]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"fit": list(counts), "runs": list(counts.values())})


def _either(tags: tuple[str, ...]) -> str:
    """``a, b or c``."""
    return f"{', '.join(tags[:-1])} or {tags[-1]}" if len(tags) > 1 else "".join(tags)


def _markdown_page(study: str, ordered: pd.DataFrame, report: Report) -> str:
    scoring = report.scoring
    states = Counter(ordered["state"])
    state_text = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    sizes, unit = report.val_sizes, scoring.unit
    folds = sorted({int(k) for k in ordered.get("cv_folds", []) if k == k})  # NaN != NaN
    if folds and len(sizes) == 1:
        scored = (
            f", scored by {'/'.join(map(str, folds))}-fold cross-validation over {sizes[0]:,} "
            f"training {unit} (value: the mean over folds; ± folds: their standard deviation)"
        )
    elif len(sizes) == 1:
        scored = f", scored on {sizes[0]:,} validation {unit}"
    elif sizes:
        scored = f", scored on validation splits of {' / '.join(f'{n:,}' for n in sizes)} {unit}"
    else:
        scored = ""
    objective = f"{scoring.direction} {scoring.metric}"
    if scoring.reduce != "best":  # best is the default: the line reads as before
        objective += f" ({scoring.reduce} epoch)"
    if scoring.also is not None:
        objective += f", traded against {scoring.also} (minimised)"
    task = f"task: {scoring.kind}; " if unit != "images" else ""
    parts = [
        f"# Study {study}",
        "",
        f"{len(ordered)} trials ({state_text}); {task}objective: {objective}{scored}.",
        "",
        "## Runs by fit group",
        "",
        to_markdown(_counts_frame(report.counts)),
    ]
    if report.front is not None:
        parts += _front_section(report.front)
    if report.counts.get(PRUNED):
        parts += [
            f"`{PRUNED}`: stopped early by the pruner. A history cut short on purpose is no fit",
            f"verdict, so these trials are not counted as {_either(FIT_TAGS)}.",
            "",
        ]
    parts += [
        "## Trials, best first",
        "",
        to_markdown(display_frame(ordered, scoring)),
        "## Figures",
        "",
        *[f"- [{name}]({name})" for name in report.files if name.endswith((".html", ".png"))],
    ]
    if report.notes:
        parts += ["", "Not drawn:", "", *[f"- {note}" for note in report.notes]]
    return "\n".join(parts) + "\n"


def _front_section(front: Front) -> list[str]:
    """The markdown page's Pareto-front table: trial, both values, the run link."""
    parts = [
        "## Pareto front",
        "",
        f"{len(front.points)} trials no other trial beats on both {front.metric} and "
        f"{front.also}, best {front.metric} first ([png]({FRONT_PNG}), [html]({FRONT_HTML})):",
        "",
        f"| trial | {front.metric} | {front.also} | run |",
        "| ---: | ---: | ---: | --- |",
    ]
    for p in front.points:
        best = " (best)" if p.trial == front.best else ""
        run = f"[{p.run_id}]({p.link})" if p.link else (p.run_id or "—")
        parts.append(f"| {p.trial}{best} | {fmt_score(p.primary)} | {fmt_also(p.second)} | {run} |")
    return [*parts, ""]


def log_study_report(study: optuna.Study, tracker: Tracker, parent_run_id: str) -> Report | None:
    """Write the report and log it under ``report/`` on the sweep's parent run.

    Returns ``None`` (and logs nothing) when the study has no trial to report.
    """
    if not reported_trials(study):
        return None
    with tempfile.TemporaryDirectory(prefix="nnsweep-report-") as tmp:
        report = write_report(study, tracker.client, tmp)
        tracker.client.log_artifacts(parent_run_id, tmp, REPORT_ARTIFACT_DIR)
    if report.learned is not None:
        log_learned(tracker.client, parent_run_id, report.learned)
    report.out = Path(REPORT_ARTIFACT_DIR)
    return report


def study_report(study_name: str, storage_url: str, tracking_uri: str, out: str | Path) -> Report:
    """``nnsweep report``: load the study and write its report into ``out``.

    Raises:
        StudyNotFoundError, NoCompleteTrialError, StorageError: as they say.
    """
    from nnsweep.study.storage import load_study

    study = load_study(study_name, storage_url)
    return write_report(study, open_reader(tracking_uri), out)
