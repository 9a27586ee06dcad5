"""The study report: every trial side by side, so over- and underfitting compare across runs.

:func:`trials_frame` joins the Optuna study (state, params, value, duration) with each trial's
MLflow child run (the fit diagnosis of :mod:`nnsweep.diagnosis`: metrics and tag
``nnsweep.fit``). :func:`write_report` writes, into one folder:

* ``trials.csv`` (every column, params as ``params.<name>``) and ``trials.md`` (runs by fit
  tag, then the table, best trial first);
* ``optimization_history.html``, ``parallel_coordinate.html``, ``param_importances.html``:
  Optuna's plotly figures, self-contained so they open offline and in the MLflow UI;
* ``accuracy_overlay.png``: train vs validation accuracy of the top trials and of the worst
  over- and underfitters;
* ``fit_counts.csv``: runs by fit tag.

``nnsweep run`` logs the folder under ``report/`` on its parent run (:func:`log_study_report`);
``nnsweep report`` writes it to disk; ``nnsweep compare`` prints the table. Trials that stepped
back before training because other workers had filled the target (``nnsweep.surplus``) have no
run and are left out.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnosis import FIT_TAGS
from .errors import NoCompleteTrialError, StorageError
from .objective import SURPLUS_ATTR
from .tracking import fetch_history, open_reader
from .urls import mask_url

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from .tracking import Tracker

RUN_ID_ATTR = "nnsweep.mlflow_run_id"
FIT_TAG = "nnsweep.fit"
NO_FIT = "none"  # a trial with no diagnosis: it finished no usable epoch
DIAGNOSIS_COLUMNS = (
    "best_val_accuracy",
    "final_val_accuracy",
    "gap_accuracy",
    "gap_loss",
    "val_loss_rise",
    "best_epoch",
)
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
_SEARCH_CHUNK = 100


@dataclass
class Report:
    """What :func:`write_report` wrote: file names in ``out``, fit counts, and skipped parts."""

    out: Path
    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_trials: int = 0


# -- MLflow side ------------------------------------------------------------------------------
def _experiment_ids(client: MlflowClient, study: optuna.Study) -> list[str]:
    """The experiments that may hold the study's runs: the one the sweep recorded, by id and
    by the sweep's name (a study resumed against another store has a stale id)."""
    from mlflow.exceptions import MlflowException

    ids: list[str] = []
    exp_id = study.user_attrs.get("nnsweep.experiment_id")
    if exp_id is not None:
        try:
            ids.append(str(client.get_experiment(str(exp_id)).experiment_id))
        except MlflowException:
            pass
    name = (study.user_attrs.get("nnsweep.spec") or {}).get("name", study.study_name)
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


# -- the table --------------------------------------------------------------------------------
def _trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS_ATTR)]


def trials_frame(study: optuna.Study, client: MlflowClient) -> pd.DataFrame:
    """One row per trial: Optuna's view joined with the diagnosis on its MLflow run.

    Columns: ``trial``, ``state``, ``value`` (the objective; NaN unless COMPLETE), one
    ``params.<name>`` per hyperparameter, the diagnosis metrics, ``fit`` (``underfit``,
    ``good``, ``overfit``, or ``none`` when undiagnosed), ``epochs``, ``duration_s`` and
    ``run_id``. Rows are in trial order.

    Raises:
        NoCompleteTrialError: the study has no trial yet.
        StorageError: trials have MLflow run ids but the store holds none of those runs.
    """
    import pandas as pd

    trials = _trials(study)
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
    rows = []
    for t in trials:
        run_id = t.user_attrs.get(RUN_ID_ATTR)
        run = runs.get(str(run_id)) if run_id else None
        metrics = run.data.metrics if run else {}
        params = t.user_attrs.get("nnsweep.params") or t.params
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            "value": t.value if t.value is not None else math.nan,
        }
        row.update({f"params.{k}": v for k, v in params.items()})
        row.update({k: metrics.get(k, math.nan) for k in DIAGNOSIS_COLUMNS})
        row["fit"] = run.data.tags.get(FIT_TAG, NO_FIT) if run else NO_FIT
        row["epochs"] = metrics.get("epochs_run", math.nan)
        row["duration_s"] = t.duration.total_seconds() if t.duration is not None else math.nan
        row["run_id"] = run_id or ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    tail = [*DIAGNOSIS_COLUMNS, "fit", "epochs", "duration_s", "run_id"]
    head = ["trial", "state", "value"]
    middle = [c for c in frame.columns if c not in head and c not in tail]
    return frame[head + middle + tail]


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
    """Rows in a useful order: ``value`` best first (by ``direction``), ``trial`` and text
    columns ascending, other numbers largest first; NaN always last; ``reverse`` flips it.

    Raises:
        ValueError: no such column.
    """
    import pandas as pd

    col = resolve_column(frame, column)
    if col == "value":
        ascending = direction == "minimize"
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
    """Runs by fit tag: ``underfit``, ``good``, ``overfit`` (always), ``none`` (when any)."""
    counts = Counter(str(f) for f in frame["fit"])
    out = {tag: counts.get(tag, 0) for tag in FIT_TAGS}
    if counts.get(NO_FIT):
        out[NO_FIT] = counts[NO_FIT]
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it (strings): trial, state, params, best/final val accuracy,
    gap, fit, duration, run id. ``params`` lists only the hyperparameters that vary between
    the trials of ``frame`` (all of them when none does)."""
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

    return pd.DataFrame(
        {
            "trial": frame["trial"].astype(str),
            "state": frame["state"],
            "params": [params_of(row) for _, row in frame.iterrows()],
            "best val_acc": [_fmt(v) for v in frame["best_val_accuracy"]],
            "final val_acc": [_fmt(v) for v in frame["final_val_accuracy"]],
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
) -> tuple[list[int], list[int]]:
    """Trial numbers for the overlay: the ``top_k`` COMPLETE trials by value, and the
    ``worst`` overfitters (largest gap) plus the ``worst`` underfitters (lowest best val
    accuracy)."""
    complete = frame[(frame["state"] == "COMPLETE") & frame["value"].notna()]
    top = sort_trials(complete, "value", direction=direction)["trial"].head(top_k).tolist()
    over = frame[frame["fit"] == "overfit"].sort_values(
        ["gap_accuracy", "trial"], ascending=[False, True], na_position="last"
    )
    under = frame[frame["fit"] == "underfit"].sort_values(
        ["best_val_accuracy", "trial"], ascending=[True, True], na_position="last"
    )
    bad = over["trial"].head(worst).tolist() + under["trial"].head(worst).tolist()
    return [int(n) for n in top], [int(n) for n in bad]


def _write_overlay(
    frame: pd.DataFrame, client: MlflowClient, direction: str, path: Path, study_name: str
) -> bool:
    from .plots import Curves, accuracy_overlay, save

    top, bad = overlay_groups(frame, direction)
    if not top and not bad:
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
            label = f"#{n} {row['fit']} (best val {_fmt(row['best_val_accuracy'], 3)})"
            out.append(Curves(label, cache[n]))
        return out

    fig = accuracy_overlay(
        [(f"top {len(top)} by objective", curves(top)), ("worst over/underfitters", curves(bad))],
        title=f"study {study_name}: train vs validation accuracy",
    )
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
    metric = str(study.user_attrs.get("nnsweep.objective", "value"))
    ordered = sort_trials(frame, "value", direction=direction)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # a part skipped now must not leave an old file behind
        (folder / name).unlink(missing_ok=True)

    report = Report(out=folder, counts=fit_counts(frame), n_trials=len(frame))
    ordered.to_csv(folder / TABLE_CSV, index=False)
    _counts_frame(report.counts).to_csv(folder / COUNTS_CSV, index=False)
    report.files += [TABLE_CSV, COUNTS_CSV]

    n_complete = int((frame["state"] == TrialState.COMPLETE.name).sum())
    plots, report.notes = _write_optuna_plots(study, folder, n_complete, metric)
    report.files += plots
    if _write_overlay(frame, client, direction, folder / OVERLAY_PNG, study.study_name):
        report.files.append(OVERLAY_PNG)
    else:
        report.notes.append(f"{OVERLAY_PNG} skipped: no COMPLETE, overfit or underfit trial")

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
    parts = [
        f"# Study {study}",
        "",
        f"{len(ordered)} trials ({state_text}); objective: {direction} {metric}.",
        "",
        "## Runs by fit tag",
        "",
        to_markdown(_counts_frame(report.counts)),
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
    if not _trials(study):
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


def study_table(study_name: str, storage_url: str, tracking_uri: str) -> tuple[str, pd.DataFrame]:
    """``nnsweep compare``: (the study's direction, its trials frame)."""
    from .study import load_study

    study = load_study(study_name, storage_url)
    return study.direction.name.lower(), trials_frame(study, open_reader(tracking_uri))
