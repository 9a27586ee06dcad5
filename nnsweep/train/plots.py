"""Learning-curve figures (matplotlib): one trial's two panels, and an overlay of several trials.

Figures are plain :class:`matplotlib.figure.Figure` objects on the Agg canvas, never pyplot,
so no window opens, nothing global is kept between trials, and no figure has to be closed.
matplotlib is imported inside the functions, so importing this module stays cheap.

The x axis is the epoch counted from 1, as Keras prints it and as MLflow's metric steps are.
Non-finite values (a loss that turned NaN) are left out of the lines rather than drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

History = Mapping[str, Sequence[float]]
PANELS = (("accuracy", "val_accuracy", "accuracy"), ("loss", "val_loss", "loss"))
# the metric panel of a learning-curve figure: the first of these the history holds
# (classification logs accuracy, regression mae); accuracy when it holds none of them
PANEL_METRICS = ("accuracy", "mae", "auc")
DPI = 100
# savefig's PNG options: zlib level 1 instead of Pillow's 6 writes a learning-curve figure
# ~20 ms faster (of ~130 ms) for a file ~9 % larger (134 vs 123 kB)
PNG_SAVE: dict[str, object] = {"dpi": DPI, "pil_kwargs": {"compress_level": 1}}


@dataclass(frozen=True)
class Curves:
    """One trial's history under a legend label, for :func:`accuracy_overlay`."""

    label: str
    history: History


def _figure(
    width: float, height: float, layout: Literal["constrained", "tight"] | None = "constrained"
) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _points(values: Sequence[float]) -> tuple[list[int], list[float]]:
    """(epochs from 1, values) with the non-finite values dropped."""
    pairs = [(i + 1, float(v)) for i, v in enumerate(values) if math.isfinite(float(v))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _epoch_axis(ax: Axes, n_epochs: int) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, max(n_epochs, 1) + 0.5)
    ax.grid(True, alpha=0.3)


def learning_curves(
    history: History, *, title: str, best_epoch: int | None = None, note: str = ""
) -> Figure:
    """Two panels by epoch: the task's metric (accuracy, or mae for regression) against its
    validation twin, and loss vs val_loss; with the dropout-off ``train_eval_*`` curve between
    them when the history has it.

    Args:
        history: Keras history, one value per epoch (a pruned trial's is just shorter).
        title: the figure's title, e.g. ``"trial 3 · PRUNED after 2 epochs · underfit"``.
        best_epoch: marked with a dotted vertical line on both panels when given.
        note: a smaller line under the title (wrapped), e.g. why the fit got its tag.
    """
    import textwrap

    heading = title
    if note:
        heading += "\n" + "\n".join(textwrap.wrap(note, 130))
    # Fixed margins, not the constrained layout: every trial draws this figure, and the layout
    # solver cost ~0.1-0.3 s of the ~0.3-0.5 s it took. Room above the panels for the heading.
    height = 4.0 + 0.2 * heading.count("\n")
    fig = _figure(10, height, layout=None)
    fig.subplots_adjust(
        left=0.07,
        right=0.985,
        bottom=0.5 / height,
        top=1 - (0.3 + 0.2 * heading.count("\n")) / height,
        wspace=0.22,
    )
    fig.suptitle(heading, fontsize="medium", y=1 - 0.08 / height, va="top")
    n = max((len(v) for v in history.values()), default=0)
    panels = curve_panels(history)
    for ax, (train, val, label) in zip(fig.subplots(1, 2), panels, strict=True):
        # the dropout-off train curve (nnsweep.traineval), which the fit verdict reads
        for key, style in ((train, "-o"), (f"train_eval_{train}", "-^"), (val, "-s")):
            x, y = _points(history.get(key, ()))
            if x:
                ax.plot(x, y, style, markersize=3, label=key)
        if best_epoch is not None:
            ax.axvline(best_epoch, linestyle=":", color="grey", label=f"best epoch ({best_epoch})")
        ax.set_ylabel(label)
        _epoch_axis(ax, n)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    return fig


def curve_panels(history: History) -> list[tuple[str, str, str]]:
    """(training key, validation key, y label) of each panel :func:`learning_curves` draws."""
    present = (m for m in PANEL_METRICS if history.get(m) or history.get(f"val_{m}"))
    metric = next(present, PANEL_METRICS[0])
    return [(metric, f"val_{metric}", metric), ("loss", "val_loss", "loss")]


def accuracy_overlay(
    panels: Sequence[tuple[str, Sequence[Curves]]], *, title: str, metric: str = "accuracy"
) -> Figure:
    """Training (dashed) and validation (solid) ``metric`` of several trials, one colour per
    trial: ``accuracy`` by default, the task's metric otherwise (``mae``, ``auc``). The
    training curve is the dropout-off ``train_eval_<metric>`` where a history has it (the one
    the fit verdict reads), else Keras' own ``<metric>``.

    Args:
        panels: ``(panel title, curves)`` pairs, drawn side by side; an empty panel says so.
        title: the figure's title.
        metric: the per-epoch metric to draw (its ``val_`` twin is the validation curve).
    """
    fig = _figure(6 * max(len(panels), 1), 4.5)

    def train_key(history: History) -> str:
        evaluated = f"train_eval_{metric}"
        return evaluated if history.get(evaluated) else metric

    dropout_off = any(train_key(c.history) != metric for _, curves in panels for c in curves)
    side = "training data, dropout off" if dropout_off else "training data"
    fig.suptitle(f"{title}\n(solid: val_{metric}, dashed: {metric} on the {side})")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    colors: dict[str, str] = {}  # one colour per trial, the same in every panel
    for _, curves in panels:
        for c in curves:
            colors.setdefault(c.label, f"C{len(colors) % 10}")
    for ax, (panel_title, curves) in zip(axes, panels, strict=False):
        ax.set_title(panel_title)
        n = max((len(c.history.get(f"val_{metric}", ())) for c in curves), default=0)
        for c in curves:
            color = colors[c.label]
            x, y = _points(c.history.get(f"val_{metric}", ()))
            ax.plot(x, y, "-", color=color, marker="o", markersize=3, label=c.label)
            x, y = _points(c.history.get(train_key(c.history), ()))
            ax.plot(x, y, "--", color=color, alpha=0.8)
        if not curves:
            ax.text(
                0.5,
                0.5,
                "no trials in this group",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.set_ylabel(metric)
        _epoch_axis(ax, n)
        if curves:
            # accuracy/auc rise towards the top right, errors fall towards the bottom right
            ax.legend(loc="upper right" if metric == "mae" else "lower right", fontsize="small")
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (the format follows the suffix) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, **PNG_SAVE)  # type: ignore[arg-type]  # a dict of savefig keywords
    return out
