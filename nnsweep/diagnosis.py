"""Fit diagnosis: read a trial's epoch history and tag it ``underfit``, ``good`` or ``overfit``.

A pure function of the Keras history (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
one value per epoch) and the thresholds of the sweep file's ``diagnosis:`` section
(:class:`nnsweep.config.DiagnosisSpec`). Nothing here imports Keras or MLflow.

Only *usable* epochs count: those whose four values are all finite, so a trial whose loss
turned NaN is judged on the epochs before it. Epoch numbers stay those Keras printed (from 1).
With ``L``, ``A``, ``VL``, ``VA`` the four series over the usable epochs:

Metrics (logged on the trial's run)
    ``best_epoch``          the epoch of the highest ``val_accuracy`` (the first one on a tie)
    ``best_val_accuracy``   ``max(VA)``
    ``final_val_accuracy``  ``VA`` at the last epoch
    ``gap_accuracy``        ``A - VA`` at the last epoch (train minus validation)
    ``gap_loss``            ``VL - L`` at the last epoch (validation minus train)
    ``val_loss_rise``       ``(VL[last] - min(VL)) / min(VL)``: 0 while validation loss is at
                            its minimum, 0.25 when it ended 25 % above it

Rules, checked in this order; the first that holds gives the tag. ``w`` is the last
``TREND_WINDOW`` (3) epochs, or all of them when fewer ran: a rule must hold over a trend, since
one noisy epoch on a small validation split moves ``val_loss`` by several percent.

    1. ``overfit`` when validation loss rose clearly while training loss kept falling: at each
       of the last ``w`` epochs ``VL > min(VL) * (1 + diagnosis.val_loss_rise)``, and
       ``L[last] < L`` at the epoch of ``min(VL)``;
       or when the accuracy gap is large: ``A - VA > diagnosis.overfit_gap`` at each of the
       last ``w`` epochs.
    2. ``underfit`` when training accuracy itself stays low: ``max(A) <
       diagnosis.underfit_accuracy``;
       or when both curves were still improving at the last epoch: it set a new ``min(VL)``,
       and both ``L`` and ``VL`` fell by more than ``diagnosis.still_improving`` per epoch
       (relative, from ``w`` epochs before the last to the last; at least 2 epochs needed).
    3. ``good`` otherwise.

Defaults: ``overfit_gap`` 0.05 (5 accuracy points), ``val_loss_rise`` 0.10 (10 % above the
minimum), ``underfit_accuracy`` 0.80, ``still_improving`` 0.02 (2 % per epoch). They were set
on the bundled 5,000 digits, whose 400-image validation split moves ``val_loss`` by 3-5 % from
one epoch to the next: the window and the 2 % keep a converged model from being called
"still improving" by noise, while a model that gains 2 % or more per epoch over its last three
epochs is one that stopped too early.

Overfitting is checked first: a model that is both weak and far better on its training data
than on unseen data has a variance problem to fix before a capacity one. A history with no
usable epoch (a crash before the first epoch ended, or NaN from epoch 1) has nothing to judge:
:func:`diagnose` returns ``None``. Nor is a trial the pruner stopped judged by these rules: its
history ends where the pruner cut it, so it is the group :data:`PRUNED`, not a verdict.
The logged ``val_loss_rise`` and ``gap_accuracy`` are the last epoch's values; the tag's
``reason`` says which rule fired and with which numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .config import DiagnosisSpec

FitTag = Literal["underfit", "good", "overfit"]
FIT_TAGS: tuple[FitTag, ...] = ("underfit", "good", "overfit")
# The ``nnsweep.fit`` group of a trial the pruner stopped: its history was cut short on
# purpose, so no rule above is a verdict on it, and reports keep it out of the FIT_TAGS counts.
PRUNED = "pruned"
SERIES = ("loss", "accuracy", "val_loss", "val_accuracy")
TREND_WINDOW = 3
_TINY = 1e-12  # guards divisions by a loss of exactly 0


@dataclass(frozen=True)
class Diagnosis:
    """The fit of one trial: the metrics the rules read, the tag, and why."""

    fit: FitTag
    reason: str
    epochs: int
    best_epoch: int
    best_val_accuracy: float
    final_val_accuracy: float
    gap_accuracy: float
    gap_loss: float
    val_loss_rise: float

    def metrics(self) -> dict[str, float]:
        """The values logged as MLflow metrics, under the same names on every run."""
        return {
            "best_epoch": float(self.best_epoch),
            "best_val_accuracy": self.best_val_accuracy,
            "final_val_accuracy": self.final_val_accuracy,
            "gap_accuracy": self.gap_accuracy,
            "gap_loss": self.gap_loss,
            "val_loss_rise": self.val_loss_rise,
        }


def usable_epochs(history: Mapping[str, Sequence[float]]) -> list[int]:
    """Indexes (from 0) of the epochs whose four series are all finite.

    Raises:
        ValueError: some series is missing or the series differ in length, which no Keras
            history with validation data does.
    """
    present = [k for k in SERIES if len(history.get(k, ())) > 0]
    if not present:
        return []
    missing = [k for k in SERIES if k not in present]
    if missing:
        raise ValueError(
            f"history has {', '.join(present)} but no {', '.join(missing)}; fit with "
            "validation_data and metrics=['accuracy'] so all four series are recorded"
        )
    lengths = {k: len(history[k]) for k in SERIES}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history series differ in length ({lengths}); expected one per epoch")
    n = lengths["loss"]
    return [i for i in range(n) if all(math.isfinite(float(history[k][i])) for k in SERIES)]


def _drop_per_epoch(series: Sequence[float], window: int) -> float:
    """Average relative fall per epoch over the last ``window`` steps (negative: it rose)."""
    start, end = series[-1 - window], series[-1]
    return (start - end) / max(abs(start), _TINY) / window


def diagnose(history: Mapping[str, Sequence[float]], rules: DiagnosisSpec) -> Diagnosis | None:
    """Tag the fit of one trial from its epoch history (the rules are in the module docstring).

    Args:
        history: ``{"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy":
            [...]}``, one value per epoch, as Keras' ``History.history`` holds it.
        rules: the thresholds, ``spec.diagnosis``.

    Returns:
        The diagnosis, or ``None`` when no epoch has four finite values.

    Raises:
        ValueError: a series is missing or the series differ in length.
    """
    keep = usable_epochs(history)
    if not keep:
        return None
    loss, acc, val_loss, val_acc = ([float(history[k][i]) for i in keep] for k in SERIES)
    n = len(keep)

    best_i = max(range(n), key=lambda i: (val_acc[i], -i))
    min_vl_i = min(range(n), key=lambda i: (val_loss[i], i))
    min_vl = val_loss[min_vl_i]
    rise = (val_loss[-1] - min_vl) / max(min_vl, _TINY)
    gap_acc = acc[-1] - val_acc[-1]
    gap_loss = val_loss[-1] - loss[-1]

    # Each rule reads the last few epochs, not the last one alone: one noisy epoch of a
    # 400-image validation split moves val_loss by several percent.
    w = min(TREND_WINDOW, n)
    fit: FitTag
    if all(v > min_vl * (1 + rules.val_loss_rise) for v in val_loss[-w:]) and (
        loss[-1] < loss[min_vl_i]
    ):
        fit = "overfit"
        reason = (
            f"val_loss stayed over {rules.val_loss_rise:.0%} above its minimum {min_vl:.4g} "
            f"(epoch {keep[min_vl_i] + 1}) for the last {w} epochs, ending {rise:.0%} above it, "
            f"while loss kept falling ({loss[min_vl_i]:.4g} -> {loss[-1]:.4g}); "
            f"limit diagnosis.val_loss_rise={rules.val_loss_rise:g}"
        )
    elif all(a - va > rules.overfit_gap for a, va in zip(acc[-w:], val_acc[-w:], strict=True)):
        fit = "overfit"
        reason = (
            f"train accuracy stayed over {rules.overfit_gap:g} above val_accuracy for the last "
            f"{w} epochs, ending {acc[-1]:.3f} vs {val_acc[-1]:.3f}; limit "
            f"diagnosis.overfit_gap={rules.overfit_gap:g}"
        )
    elif max(acc) < rules.underfit_accuracy:
        fit = "underfit"
        reason = (
            f"train accuracy never reached diagnosis.underfit_accuracy="
            f"{rules.underfit_accuracy:g} (best {max(acc):.3f})"
        )
    elif n >= 2 and min_vl_i == n - 1 and _still_improving(loss, val_loss, rules):
        steps = min(TREND_WINDOW, n - 1)
        fit = "underfit"
        drop_l, drop_vl = _drop_per_epoch(loss, steps), _drop_per_epoch(val_loss, steps)
        reason = (
            f"still improving at the last epoch (a new val_loss minimum): loss fell {drop_l:.1%}"
            f" and val_loss {drop_vl:.1%} per epoch over the last {steps} epoch"
            f"{'s' if steps > 1 else ''}; limit "
            f"diagnosis.still_improving={rules.still_improving:g}; train longer"
        )
    else:
        fit = "good"
        reason = (
            f"no rule fired: gap {gap_acc:+.3f} at the last epoch, val_loss {rise:.0%} above its "
            f"minimum, best train accuracy {max(acc):.3f}"
        )
    return Diagnosis(
        fit=fit,
        reason=reason,
        epochs=n,
        best_epoch=keep[best_i] + 1,
        best_val_accuracy=val_acc[best_i],
        final_val_accuracy=val_acc[-1],
        gap_accuracy=gap_acc,
        gap_loss=gap_loss,
        val_loss_rise=rise,
    )


def _still_improving(loss: list[float], val_loss: list[float], rules: DiagnosisSpec) -> bool:
    steps = min(TREND_WINDOW, len(loss) - 1)
    return (
        _drop_per_epoch(loss, steps) > rules.still_improving
        and _drop_per_epoch(val_loss, steps) > rules.still_improving
    )
