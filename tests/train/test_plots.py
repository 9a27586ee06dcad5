"""Learning-curve figures: what each panel draws, edge histories, and the written PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from nnsweep.train.plots import Curves, accuracy_overlay, learning_curves, save

if TYPE_CHECKING:
    from matplotlib.axes import Axes

NAN = float("nan")
HISTORY = {
    "loss": [0.9, 0.4, 0.3],
    "accuracy": [0.7, 0.88, 0.92],
    "val_loss": [0.5, 0.35, 0.33],
    "val_accuracy": [0.85, 0.9, 0.91],
}


def lines_of(ax: Axes) -> dict[str, tuple[list[float], list[float]]]:
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.get_lines()
    }


def test_two_panels_of_train_and_validation_curves_by_epoch() -> None:
    fig = learning_curves(HISTORY, title="trial 3 · COMPLETE after 3 epochs · good", best_epoch=3)
    acc_ax, loss_ax = fig.axes
    acc = lines_of(acc_ax)
    assert acc["accuracy"] == ([1, 2, 3], HISTORY["accuracy"])
    assert acc["val_accuracy"] == ([1, 2, 3], HISTORY["val_accuracy"])
    assert lines_of(loss_ax)["val_loss"] == ([1, 2, 3], HISTORY["val_loss"])
    assert acc["best epoch (3)"][0] == [3, 3]  # the dotted marker of the best epoch
    assert "trial 3" in fig.get_suptitle()
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy", "loss"]


def test_the_note_goes_under_the_title() -> None:
    fig = learning_curves(HISTORY, title="trial 0", note="why " * 60)
    title = fig.get_suptitle()
    assert title.startswith("trial 0\nwhy") and title.count("\n") >= 2  # wrapped


@pytest.mark.parametrize(
    ("history", "points"),
    [
        ({k: v[:1] for k, v in HISTORY.items()}, 1),
        ({**HISTORY, "loss": [0.9, NAN, NAN], "val_loss": [0.5, 0.4, NAN]}, 1),
        ({"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}, 0),
    ],
    ids=["one epoch", "NaN dropped", "empty"],
)
def test_edge_histories_draw_what_there_is(history: dict[str, list[float]], points: int) -> None:
    fig = learning_curves(history, title="t")
    loss_lines = lines_of(fig.axes[1])
    assert len(loss_lines.get("loss", ([], []))[0]) == points
    for line in fig.axes[0].get_lines():
        assert line.get_marker() not in (None, "None", "")  # a lone epoch stays visible


def test_overlay_keeps_one_colour_per_trial_across_panels() -> None:
    a, b = Curves("#1 good", HISTORY), Curves("#4 overfit", HISTORY)
    fig = accuracy_overlay([("top 2", [a, b]), ("worst", [b]), ("none", [])], title="study s")
    top, worst, empty = fig.axes
    colour = {line.get_label(): line.get_color() for line in top.get_lines()}
    assert colour["#1 good"] != colour["#4 overfit"]
    assert {line.get_label(): line.get_color() for line in worst.get_lines()}["#4 overfit"] == (
        colour["#4 overfit"]
    )
    # solid val_accuracy and dashed train accuracy per trial
    assert sorted(line.get_linestyle() for line in worst.get_lines()) == ["-", "--"]
    assert "no trials in this group" in [t.get_text() for t in empty.texts]


def test_save_writes_a_png(tmp_path: Path) -> None:
    path = save(learning_curves(HISTORY, title="t"), tmp_path / "sub" / "curves.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (1000, 400)


def test_importing_the_report_modules_loads_no_heavy_library() -> None:
    code = (
        "import sys, nnsweep.train.plots, nnsweep.train.diagnosis\n"
        "import nnsweep.results.report, nnsweep.results.trials\n"
        "import nnsweep.train.steps\n"
        "import nnsweep.train.plots as p\n"
        "heavy = [m for m in ('matplotlib', 'keras', 'tensorflow', 'mlflow', 'optuna', 'plotly',"
        " 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "p.learning_curves({'loss': [1.0]}, title='t')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("history", "panel"),
    [
        ({"loss": [1.0, 0.5], "accuracy": [0.5, 0.7], "auc": [0.6, 0.8]}, "accuracy"),
        ({"loss": [9.0, 4.0], "mae": [2.0, 1.5], "val_loss": [9.5, 5.0], "val_mae": [2.1, 1.7]},
         "mae"),
        ({"loss": [1.0], "val_loss": [1.1]}, "accuracy"),
    ],
    ids=["classification", "regression", "loss only"],
)  # fmt: skip
def test_the_metric_panel_follows_the_task(history: dict[str, list[float]], panel: str) -> None:
    from nnsweep.train.plots import curve_panels

    assert curve_panels(history)[0] == (panel, f"val_{panel}", panel)
    fig = learning_curves(history, title="t")
    assert fig.axes[0].get_ylabel() == panel and fig.axes[1].get_ylabel() == "loss"
    assert {ln.get_label() for ln in fig.axes[0].get_lines()} <= {panel, f"val_{panel}"}
