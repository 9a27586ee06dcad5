"""The Pareto front of a multi-objective study: the trials no other trial beats on both counts.

A study with ``objective.also`` (:mod:`nnsweep.study.objectives`) trades its primary metric
against a second one that is minimised (trainable parameters, or one-row CPU latency). A trial
is on the **front** when no other COMPLETE trial of the study is at least as good on both
objectives and better on one: Optuna's ``Study.best_trials``, computed over the trials the study
ran itself (history a warm start copied in is left out, :mod:`nnsweep.study.own`).

:func:`read_front` gives the front (best primary value first) with each trial's MLflow run and a
link to it in the MLflow UI; :func:`write_front` draws it (``pareto_front.png`` with matplotlib,
``pareto_front.html`` with plotly: hover a point for its values and run link, click it to open
the run; a table of the front's run links below it) and writes ``pareto_front.json``;
:func:`log_front` logs the JSON and the PNG and the metrics ``pareto_size`` (and
``pareto_best_primary``, ``pareto_min_<metric>``) on a sweep's parent run. A single-objective
study's "front" is its best trial alone.
"""

from __future__ import annotations

import json
import math
import tempfile
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.names import OBJECTIVE_ATTR, PARAMS_ATTR, RUN_ID_ATTR
from nnsweep.results.trials import fetch_runs
from nnsweep.study.front import own_front
from nnsweep.study.objectives import (
    ALSO_LABELS,
    also_metric,
    also_value,
    is_multi,
    primary_direction,
    primary_value,
)
from nnsweep.study.own import own_complete

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient
    from optuna.trial import FrozenTrial

    from nnsweep.track.tracker import Tracker

FRONT_JSON, FRONT_PNG, FRONT_HTML = "pareto_front.json", "pareto_front.png", "pareto_front.html"
OUTPUTS = (FRONT_JSON, FRONT_PNG, FRONT_HTML)
# where `nnsweep ui` serves the MLflow UI by default: a file or SQLite store has no UI of its
# own, so its run links point there
DEFAULT_UI = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class Point:
    """One COMPLETE trial as the front sees it: its two values, params and MLflow run."""

    trial: int
    primary: float
    second: float | None
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    link: str | None = None  # the run's page in the MLflow UI, where its experiment is known


@dataclass
class Front:
    """The Pareto front of ``study``: ``points`` best primary value first (ties: the smaller
    second value, then the earlier trial), ``others`` the dominated COMPLETE trials (in trial
    order), ``best`` the best-primary trial's number."""

    study: str
    metric: str
    also: str | None
    direction: str  # the primary objective's
    points: list[Point]
    others: list[Point] = field(default_factory=list)

    @property
    def best(self) -> int | None:
        return self.points[0].trial if self.points else None

    @property
    def numbers(self) -> list[int]:
        return [p.trial for p in self.points]

    @property
    def also_label(self) -> str:
        return ALSO_LABELS.get(self.also or "", self.also or "")

    def frame(self) -> pd.DataFrame:
        """One row per front trial, best primary first: ``trial``, ``primary``, ``second``,
        ``best`` (the best-primary trial), ``run_id``, ``link``, then ``params.<name>``."""
        import pandas as pd

        rows = []
        for p in self.points:
            row: dict[str, Any] = {"trial": p.trial, "primary": p.primary, "second": p.second,
                                   "best": p.trial == self.best, "run_id": p.run_id or "",
                                   "link": p.link or ""}  # fmt: skip
            row.update({f"params.{k}": v for k, v in p.params.items()})
            rows.append(row)
        columns = ["trial", "primary", "second", "best", "run_id", "link"]
        return pd.DataFrame(rows, columns=None if rows else columns)

    def as_dict(self) -> dict[str, Any]:
        """``pareto_front.json``'s content (and ``best --json``'s ``front``)."""
        return {
            "study": self.study,
            "metric": self.metric,
            "direction": self.direction,
            "also": self.also,
            "also_label": self.also_label,
            "best": self.best,
            "size": len(self.points),
            "front": [_jsonable(asdict(p)) for p in self.points],
            "dominated": [_jsonable(asdict(p)) for p in self.others],
        }


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def metric_of(study: optuna.Study) -> str:
    """The primary metric's name: the study's metric names, else the sweep's objective."""
    names = study.metric_names
    if names and names[0]:
        return str(names[0])
    return str(study.user_attrs.get(OBJECTIVE_ATTR) or "value")


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI: on the tracking server for an ``http(s)`` store
    (credentials left out), else on ``nnsweep ui``'s default address."""
    base = DEFAULT_UI
    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.scheme in ("http", "https"):
        netloc = parts.hostname or ""
        netloc = f"[{netloc}]" if ":" in netloc else netloc
        netloc += f":{parts.port}" if parts.port else ""
        base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def read_front(study: optuna.Study, client: MlflowClient | None = None) -> Front:
    """The study's :class:`Front`; with ``client``, each trial's run link (runs the store
    does not hold get none)."""
    on_front = own_front(study)
    numbers = {t.number for t in on_front}
    others = [t for t in own_complete(study) if t.number not in numbers and t.values]
    links = _links(study, client, [*on_front, *others]) if client is not None else {}

    def point(t: FrozenTrial) -> Point:
        run_id = t.user_attrs.get(RUN_ID_ATTR)
        return Point(
            trial=t.number,
            primary=float(primary_value(t) or math.nan),
            second=also_value(t),
            params=dict(t.user_attrs.get(PARAMS_ATTR) or t.params),
            run_id=str(run_id) if run_id else None,
            link=links.get(str(run_id)) if run_id else None,
        )

    return Front(
        study=study.study_name,
        metric=metric_of(study),
        also=also_metric(study),
        direction=primary_direction(study),
        points=[point(t) for t in on_front],
        others=[point(t) for t in sorted(others, key=lambda t: t.number)],
    )


def _links(study: optuna.Study, client: MlflowClient, trials: list[FrozenTrial]) -> dict[str, str]:
    run_ids = [str(t.user_attrs[RUN_ID_ATTR]) for t in trials if t.user_attrs.get(RUN_ID_ATTR)]
    runs = fetch_runs(client, study, run_ids) if run_ids else {}
    uri = str(client.tracking_uri)
    return {rid: run_link(uri, run.info.experiment_id, rid) for rid, run in runs.items()}


# -- the figures --------------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 or float(value).is_integer() else f"{value:.4g}"


def write_front(front: Front, folder: str | Path) -> list[str]:
    """Write ``pareto_front.json``, ``.png`` and ``.html`` into ``folder`` (earlier ones are
    replaced); returns the names written (only the JSON for an empty front)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    (out / FRONT_JSON).write_text(json.dumps(front.as_dict(), indent=2) + "\n", encoding="utf-8")
    if not front.points or front.also is None:
        return [FRONT_JSON]
    _plot_png(front, out / FRONT_PNG)
    _plot_html(front, out / FRONT_HTML)
    return [FRONT_JSON, FRONT_PNG, FRONT_HTML]


def _title(front: Front) -> str:
    return (
        f"study {front.study}: Pareto front, {len(front.points)} of "
        f"{len(front.points) + len(front.others)} COMPLETE trials"
    )


def _x(p: Point) -> float:
    return math.nan if p.second is None else p.second


def _plot_png(front: Front, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    if front.others:
        ax.scatter([_x(p) for p in front.others], [p.primary for p in front.others],
                   c="#bbbbbb", s=22, label="dominated")  # fmt: skip
    line = sorted(front.points, key=lambda p: (p.second or 0.0, p.trial))
    ax.plot([_x(p) for p in line], [p.primary for p in line], "-o", c="#c44e52", ms=6,
            drawstyle="steps-post", label="Pareto front")  # fmt: skip
    for p in front.points:
        mark = " (best)" if p.trial == front.best else ""
        ax.annotate(f"#{p.trial}{mark}", (_x(p), p.primary), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    if front.also == "params" and all((p.second or 0) > 0 for p in [*front.points, *front.others]):
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")  # 1, 2, 5 x 10^k labelled in full, no overlapping minor labels
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{front.also_label} (minimised)")
    ax.set_ylabel(f"{front.metric} ({front.direction}d)")
    ax.set_title(_title(front), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _hover(front: Front, p: Point) -> str:
    params = ", ".join(f"{k}={v}" for k, v in p.params.items())
    lines = [
        f"trial #{p.trial}" + (" (best primary)" if p.trial == front.best else ""),
        f"{front.metric}: {_fmt(p.primary)}",
        f"{front.also}: {_fmt(p.second)}",
        f"run: {p.run_id or '—'}",
        f"link: {p.link or '—'}",
        params,
    ]
    return "<br>".join(lines)


def _plot_html(front: Front, path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, points, color in (("dominated", front.others, "#bbbbbb"),
                                ("Pareto front", front.points, "#c44e52")):  # fmt: skip
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p.second for p in points],
                y=[p.primary for p in points],
                mode="markers+text" if name == "Pareto front" else "markers",
                text=[f"#{p.trial}" for p in points] if name == "Pareto front" else None,
                textposition="top right",
                name=name,
                marker={"color": color, "size": 10 if name == "Pareto front" else 7},
                customdata=[p.link or "" for p in points],
                hovertext=[_hover(front, p) for p in points],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=_title(front) + " (click a point to open its MLflow run)",
        xaxis_title=f"{front.also_label} (minimised)",
        yaxis_title=f"{front.metric} ({front.direction}d)",
        template="plotly_white",
    )
    # a click opens the trial's run in the MLflow UI
    click = (
        "var plot = document.getElementById('{plot_id}');"
        "plot.on('plotly_click', function (d) {"
        " var url = d.points[0].customdata; if (url) { window.open(url, '_blank'); } });"
    )
    page = fig.to_html(include_plotlyjs=True, full_html=True, post_script=click)
    page = page.replace("</body>", _link_table(front) + "</body>", 1)
    path.write_text(page, encoding="utf-8")


def _link_table(front: Front) -> str:
    """The front as an HTML table under the plot, each trial linked to its MLflow run."""
    from html import escape

    rows = []
    for p in front.points:
        run = escape(p.run_id or "—")
        if p.link:
            run = f'<a href="{escape(p.link, quote=True)}" target="_blank">{run}</a>'
        best = " (best)" if p.trial == front.best else ""
        rows.append(
            f"<tr><td>#{p.trial}{best}</td><td>{_fmt(p.primary)}</td>"
            f"<td>{_fmt(p.second)}</td><td>{run}</td></tr>"
        )
    head = (
        f"<tr><th>trial</th><th>{escape(front.metric)}</th><th>{escape(front.also or '')}</th>"
        "<th>MLflow run</th></tr>"
    )
    return (
        '<table style="font-family: sans-serif; font-size: 13px; margin: 1em">'
        f"{head}{''.join(rows)}</table>\n"
    )


def log_front(
    study: optuna.Study, tracker: Tracker | MlflowClient, parent_run_id: str
) -> Front | None:
    """Log a multi-objective study's front on the sweep's parent run: ``pareto_front.json``
    and ``pareto_front.png`` (artifacts at the run's root; the interactive ``.html`` is in the
    run's ``report/``, :func:`nnsweep.results.report.log_study_report`) and the metrics
    ``pareto_size``, ``pareto_best_primary`` and ``pareto_min_<also>`` (the front's smallest
    second value).

    ``tracker`` is the sweep's :class:`~nnsweep.track.tracker.Tracker` or an ``MlflowClient``.
    Returns the front, or None (and logs nothing) for a single-objective study or one without
    a COMPLETE trial.
    """
    import time

    from mlflow.entities import Metric

    if not is_multi(study):
        return None
    from nnsweep.track.tracker import Tracker

    client = tracker.client if isinstance(tracker, Tracker) else tracker
    front = read_front(study, client)
    if not front.points:
        return None
    with tempfile.TemporaryDirectory(prefix="nnsweep-front-") as tmp:
        write_front(front, tmp)
        for name in (FRONT_JSON, FRONT_PNG):  # the HTML (~5 MB of plotly) once, in report/
            client.log_artifact(parent_run_id, str(Path(tmp) / name))
    now = int(time.time() * 1000)
    seconds = [p.second for p in front.points if p.second is not None]
    metrics = {
        "pareto_size": float(len(front.points)),
        "pareto_best_primary": front.points[0].primary,
    }
    if seconds:
        metrics[f"pareto_min_{front.also}"] = float(min(seconds))
    client.log_batch(parent_run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    return front
