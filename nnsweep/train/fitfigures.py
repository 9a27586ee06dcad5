"""What the fit verdicts read off a history: the series, and at one epoch levels, rise, gaps, skill.

Pure arithmetic on lists of floats, one value per usable epoch (see
:mod:`nnsweep.train.diagnosis`, which states the rules that read these figures).

A *level* is the mean of a curve over the :data:`TREND_WINDOW` epochs that end at an epoch
(fewer at the start): on a validation split of a few hundred rows one epoch's ``val_loss``
moves by 5-10 %, and comparing a level with the lowest level, not one epoch with the lowest
epoch, keeps one noisy dip or spike from reading as a trend. Rises and drops compare the level
at the judged epoch with the best level up to it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

from nnsweep.tasks import TRAIN_EVAL_PREFIX

TREND_WINDOW = 3
TINY = 1e-12  # guards divisions by a loss of exactly 0
# a training error rate below this counts as this much: 0 errors on a few hundred rows
# estimate a rate of about 1/n, not 0, and an infinite error ratio would say nothing more
ERROR_FLOOR = 0.005
Mode = Literal["accuracy", "loss"]


@dataclass(frozen=True)
class Series:
    """The history keys the rules read: training side, validation side, and which rule set."""

    mode: Mode
    loss: str
    val_loss: str = "val_loss"
    accuracy: str | None = None
    val_accuracy: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        acc = (self.accuracy, self.val_accuracy) if self.mode == "accuracy" else ()
        return tuple(k for k in (self.loss, *acc, self.val_loss) if k is not None)

    @property
    def dropout_off(self) -> bool:
        """Whether the training side is the dropout-off measure (:mod:`.traineval`)."""
        return self.loss.startswith(TRAIN_EVAL_PREFIX)

    def describe(self, what: str | None = None) -> str:
        """How the reason names the training side it read."""
        what = what or (self.accuracy if self.mode == "accuracy" else self.loss)
        return f"{what} (dropout off)" if self.dropout_off else f"Keras' {what} (dropout on)"


def level(values: list[float], i: int, window: int = TREND_WINDOW) -> float:
    """The mean of ``values`` over the ``window`` epochs ending at index ``i``."""
    return float(statistics.fmean(values[max(0, i - window + 1) : i + 1]))


@dataclass(frozen=True)
class Figures:
    """Everything the rules read, at the judged epoch (index ``at`` into the usable epochs).

    ``rise``: the ``val_loss`` level at ``at`` over its lowest level up to ``at``, minus 1;
    ``rise_from``: the index of that lowest level. ``drop``: the best ``val_accuracy`` level up
    to ``at`` minus the level at ``at`` (``None`` without accuracy). ``gap_accuracy``: train
    minus validation accuracy, mean over the window ending at ``at``; ``error_ratio``: the
    validation error rate over the training one there, minus 1; ``loss_ratio``: mean of
    ``VL / L - 1`` there; ``gap_loss``: mean of ``VL - L``; ``gap_baseline``: ``gap_loss`` in
    units of the trivial predictor's loss. ``train_skill`` / ``val_skill``: ``1 - loss / B`` at
    ``at`` (``B`` the trivial predictor's loss; for ``mse`` the R²); ``None`` without ``B``.
    """

    at: int
    window: int
    rise: float
    rise_from: int
    train_fell: bool
    drop: float | None
    best_level_at: int | None
    gap_accuracy: float | None
    error_ratio: float | None
    loss_ratio: float
    gap_loss: float
    gap_baseline: float | None
    train_skill: float | None
    val_skill: float | None


def figures(
    at: int,
    loss: list[float],
    val_loss: list[float],
    acc: list[float] | None,
    val_acc: list[float] | None,
    baseline: float | None,
) -> Figures:
    """The :class:`Figures` of the epoch at index ``at`` (the curves are the usable epochs)."""
    w = min(TREND_WINDOW, at + 1)
    span = range(at - w + 1, at + 1)
    levels = [level(val_loss, i) for i in range(at + 1)]
    low = min(range(at + 1), key=lambda i: (levels[i], i))
    rise = (levels[at] - levels[low]) / max(levels[low], TINY)
    drop: float | None = None
    best_at: int | None = None
    gap_acc: float | None = None
    error_ratio: float | None = None
    if acc is not None and val_acc is not None:
        acc_levels = [level(val_acc, i) for i in range(at + 1)]
        best_at = max(range(at + 1), key=lambda i: (acc_levels[i], -i))
        drop = acc_levels[best_at] - acc_levels[at]
        gap_acc = sum(acc[i] - val_acc[i] for i in span) / w
        val_err = sum(1 - val_acc[i] for i in span) / w
        train_err = sum(1 - acc[i] for i in span) / w
        error_ratio = (val_err - train_err) / max(train_err, ERROR_FLOOR)
    gap_loss = sum(val_loss[i] - loss[i] for i in span) / w
    ratio = sum((val_loss[i] - loss[i]) / max(loss[i], TINY) for i in span) / w
    return Figures(
        at=at,
        window=w,
        rise=rise,
        rise_from=low,
        train_fell=loss[at] < loss[low],
        drop=drop,
        best_level_at=best_at,
        gap_accuracy=gap_acc,
        error_ratio=error_ratio,
        loss_ratio=ratio,
        gap_loss=gap_loss,
        gap_baseline=None if baseline is None else gap_loss / baseline,
        train_skill=None if baseline is None else 1 - loss[at] / baseline,
        val_skill=None if baseline is None else 1 - val_loss[at] / baseline,
    )


def drop_per_epoch(series: list[float], window: int) -> float:
    """Average relative fall per epoch over the last ``window`` steps (negative: it rose)."""
    start, end = series[-1 - window], series[-1]
    return (start - end) / max(abs(start), TINY) / window
