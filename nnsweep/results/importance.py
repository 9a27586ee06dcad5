"""What mattered in a study: parameter importances, the best trials' ranges, bound warnings.

Importances are Optuna's fANOVA (:func:`optuna.importance.get_param_importances`, seeded, so
a report is the same every time) over the study's own COMPLETE trials (history copied from an
earlier study is left out). A **bound warning** is raised for a numeric dimension when most of
the best trials (at least 4 of the 5 best) sit within 10 % of an edge of its range, measured in
log space for a log range: the optimum may lie outside the space. Each warning carries the
range widened past that edge (half the span again, within the sweep file's limits), which
:mod:`nnsweep.results.nextsweep` writes into a suggested sweep file.

Written into the report folder: ``importances.csv``, ``importances.png`` and
``what_we_learned.md``; :func:`log_learned` logs the importances as ``importance.<param>``
metrics and the warnings as a tag on the sweep's parent run.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.names import BOUNDS_TAG
from nnsweep.results.bounds import Bounds, bounds_of, widen
from nnsweep.spec.space import dimension_of
from nnsweep.study.front import quiet_optuna
from nnsweep.study.objectives import is_multi, primary_direction
from nnsweep.study.own import own_complete, ranked

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

TOP = 5  # the best trials looked at
EDGE = 0.10  # "near an edge": within this share of the range (log space for a log range)
MIN_SHARE = 0.8  # of the best trials' values near one edge: 4 of 5
# a dimension that explains less of the objective's variance gets no warning: where the best
# trials sit in it is chance (a 1..2 layer range puts every value at an edge)
MIN_IMPORTANCE = 0.05
MIN_IMPORTANCE_TRIALS = 2  # COMPLETE trials fANOVA needs
SHOWN = 3  # hyperparameters shown in the block
IMPORTANCES_CSV, IMPORTANCES_PNG, LEARNED_MD = (
    "importances.csv",
    "importances.png",
    "what_we_learned.md",
)
OUTPUTS = (IMPORTANCES_CSV, IMPORTANCES_PNG, LEARNED_MD)
METRIC_PREFIX = "importance."


@dataclass(frozen=True)
class BoundWarning:
    """Most of the best trials sit near one edge of a dimension's range."""

    dimension: str
    edge: str  # "upper" or "lower"
    bound: float
    near: int  # values near the edge
    values: int  # values looked at (layer widths count one per layer)
    trials: int  # best trials they come from
    bounds: Bounds
    widened: Bounds | None = None  # the range past that edge, when the limits allow

    def line(self) -> str:
        if self.values == self.trials:
            who = f"the {self.trials} best trials are"
            if self.near < self.values:
                who = f"{self.near} of the {self.trials} best trials are"
        else:
            who = f"{self.near} of the {self.values} values of the {self.trials} best trials are"
        where = "at" if self.bounds.choices is not None else f"within {EDGE * 100:.0f} % of"
        scale = " (log scale)" if self.bounds.log else ""
        what = "largest choice" if self.edge == "upper" else "smallest choice"
        bound = what if self.bounds.choices is not None else f"{self.edge} bound"
        text = f"{self.dimension}: {who} {where} the {bound} {self.bound:g}"
        if self.widened is None:
            return f"{text}{scale}; it is the sweep file's limit"
        return f"{text}{scale}: widen it (next: {_shown_range(self.widened)})"


def _shown_range(bounds: Bounds) -> str:
    raw = bounds.raw()
    if isinstance(raw, list):
        return "[" + ", ".join(f"{v:g}" for v in raw) + "]"
    log = ", log" if raw["log"] else ""
    return f"{raw['low']:g}..{raw['high']:g}{log}"


@dataclass
class Learned:
    """What :func:`what_we_learned` found in a study."""

    study: str
    n_complete: int
    direction: str
    importances: dict[str, float] = field(default_factory=dict)
    best_ranges: dict[str, str] = field(default_factory=dict)  # dimension → best trials' values
    top: int = 0  # best trials the ranges and warnings look at
    warnings: list[BoundWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The "what we learned" block, as `nnsweep run` and `nnsweep report` print it."""
        out = [f"what we learned from {self.n_complete} COMPLETE trials of {self.study}:"]
        if self.importances:
            shown = list(self.importances.items())[:SHOWN]
            parts = ", ".join(f"{p} {v:.2f}" for p, v in shown)
            out.append(f"  what mattered (fANOVA importance): {parts}")
        if self.best_ranges:
            ranges = "; ".join(f"{d} {r}" for d, r in self.best_ranges.items())
            out.append(f"  the {self.top} best trials: {ranges}")
        out += [f"  bound warning: {w.line()}" for w in self.warnings]
        if not self.warnings and self.top:
            out.append(f"  no bound warning: the {self.top} best trials sit inside every range")
        out += [f"  note: {note}" for note in self.notes]
        return out


def importances(study: optuna.Study) -> tuple[dict[str, float], str | None]:
    """fANOVA importance of each param over the study's own COMPLETE trials, highest first,
    for the primary objective (a multi-objective study's first value); ({}, why) when they
    cannot be computed."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    trials = own_complete(study)
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return {}, f"importances need {MIN_IMPORTANCE_TRIALS} COMPLETE trials, found {len(trials)}"
    with quiet_optuna():  # in memory: own trials only
        copy = optuna.create_study(directions=study.directions)
    copy.add_trials(trials)
    target = (lambda t: t.values[0]) if is_multi(study) else None  # the primary objective
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = get_param_importances(
                copy, evaluator=FanovaImportanceEvaluator(seed=0), target=target
            )
    except (ValueError, RuntimeError) as exc:
        return {}, f"importances not computed: {exc}"
    if not found:
        return {}, "importances not computed: no hyperparameter varies in every trial"
    return {k: float(v) for k, v in found.items()}, None


def best_trials(study: optuna.Study, k: int = TOP) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best own COMPLETE trials, best first by the primary value in its direction."""
    return ranked(study)[:k]


def current_distributions(study: optuna.Study) -> dict[str, Any]:
    """Each param's distribution in the latest trial that drew it (the space as it is now)."""
    found: dict[str, Any] = {}
    for t in sorted(own_complete(study), key=lambda t: t.number):
        found.update(t.distributions)
    return found


def bound_warnings(
    best: list[optuna.trial.FrozenTrial],
    distributions: dict[str, Any],
    weights: dict[str, float] | None = None,
) -> list[BoundWarning]:
    """A warning per numeric dimension whose ``best`` trials mostly sit near one edge; with
    ``weights`` (param importances), only for dimensions that carry at least
    :data:`MIN_IMPORTANCE` of them (a dimension's params added up: ``units_0`` + ``units_1``)."""
    by_dim: dict[str, list[float]] = {}
    bounds: dict[str, Bounds] = {}
    for param, dist in distributions.items():
        found = bounds_of(dist)
        if found is None:
            continue
        dim = dimension_of(param)
        bounds.setdefault(dim, found)
        values = [float(t.params[param]) for t in best if param in t.params]
        by_dim.setdefault(dim, []).extend(values)
    carried: dict[str, float] = {}
    for param, weight in (weights or {}).items():
        carried[dimension_of(param)] = carried.get(dimension_of(param), 0.0) + weight
    out = []
    for dim, values in by_dim.items():
        b = bounds[dim]
        if len(values) < 3 or b.high == b.low:
            continue
        if weights and carried.get(dim, 0.0) < MIN_IMPORTANCE:
            continue
        positions = [b.position(v) for v in values]
        for edge, near in (
            ("upper", sum(p >= 1 - EDGE - 1e-9 for p in positions)),
            ("lower", sum(p <= EDGE + 1e-9 for p in positions)),
        ):
            if near >= math.ceil(MIN_SHARE * len(values)):
                bound = b.high if edge == "upper" else b.low
                out.append(
                    BoundWarning(
                        dim, edge, bound, near, len(values), len(best), b, widen(dim, b, edge)
                    )
                )
                break
    return out


def _range_text(values: list[Any]) -> str:
    numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numeric) == len(values) and len(set(numeric)) > 1:
        return f"{min(numeric):.3g}..{max(numeric):.3g}"
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return ", ".join(f"{v} ×{n}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def what_we_learned(study: optuna.Study, k: int = TOP) -> Learned:
    """Importances, the ``k`` best trials' ranges of the most important params, warnings."""
    found, why = importances(study)
    done = own_complete(study)
    learned = Learned(study.study_name, len(done), primary_direction(study), found)
    if why:
        learned.notes.append(why)
    best = best_trials(study, k)
    if len(best) < 3:
        learned.notes.append(f"bound warnings need 3 COMPLETE trials, found {len(best)}")
        return learned
    learned.top = len(best)
    order = list(found) or sorted({p for t in best for p in t.params})
    for param in order[:SHOWN]:
        values = [t.params[param] for t in best if param in t.params]
        if values:
            learned.best_ranges[param] = _range_text(values)
    learned.warnings = bound_warnings(best, current_distributions(study), found)
    return learned


def write_learned(study: optuna.Study, folder: Path) -> tuple[Learned, list[str]]:
    """Write ``importances.csv``, ``importances.png`` and ``what_we_learned.md`` into
    ``folder``; returns what was found and the files written."""
    for name in OUTPUTS:
        (folder / name).unlink(missing_ok=True)
    learned = what_we_learned(study)
    files = []
    if learned.importances:
        rows = ["param,importance", *(f"{p},{v:.6f}" for p, v in learned.importances.items())]
        (folder / IMPORTANCES_CSV).write_text("\n".join(rows) + "\n", encoding="utf-8")
        _plot(learned, folder / IMPORTANCES_PNG)
        files += [IMPORTANCES_CSV, IMPORTANCES_PNG]
    text = ["# What we learned", "", *[line.strip() for line in learned.lines()[1:]], ""]
    if learned.importances:
        text += ["| param | importance |", "| --- | ---: |"]
        text += [f"| {p} | {v:.3f} |" for p, v in learned.importances.items()]
        text += ["", f"![importances]({IMPORTANCES_PNG})", ""]
    (folder / LEARNED_MD).write_text("\n".join(text) + "\n", encoding="utf-8")
    return learned, [*files, LEARNED_MD]


def _plot(learned: Learned, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(learned.importances)[::-1]
    values = [learned.importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.2))
    ax.barh(names, values, color="#4c72b0")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel("fANOVA importance (share of the objective's variance)")
    ax.set_xlim(0, max(values) * 1.15 or 1)
    ax.set_title(f"study {learned.study}: what mattered ({learned.n_complete} COMPLETE trials)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def log_learned(client: MlflowClient, run_id: str, learned: Learned) -> None:
    """Log the importances (``importance.<param>``) and the bound warnings on ``run_id``."""
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(f"{METRIC_PREFIX}{p}", v, now, 0) for p, v in learned.importances.items()]
    text = "; ".join(w.line() for w in learned.warnings) or "none"
    client.log_batch(run_id, metrics=metrics, tags=[RunTag(BOUNDS_TAG, text[:5000])])
