"""Fit diagnosis: read a trial's epoch history and tag it ``underfit``, ``good`` or ``overfit``.

A pure function of the Keras history (one value per epoch and key) and the thresholds of the
sweep file's ``diagnosis:`` section (:class:`nnsweep.spec.config.DiagnosisSpec`). Nothing here
imports Keras or MLflow.

Which series the rules read
    The validation side is ``val_loss`` and, where the task has it, ``val_accuracy``. The
    training side is the *dropout-off* measure of :mod:`nnsweep.train.traineval` when the history
    has
    it: ``train_eval_loss`` and ``train_eval_accuracy``, the model scored at each epoch end with
    ``training=False`` on a fixed training subset as large as the validation split. Keras' own
    ``loss``/``accuracy`` are measured with dropout on and averaged over the epoch, so with
    dropout 0.5 they sit several points below what the same weights score: a gap read from them
    hides overfitting and over-calls underfitting. Histories without ``train_eval_*`` (runs
    logged before it existed) fall back to Keras' ``loss``/``accuracy``; the reason says which.

Two rule sets, chosen by the history: *accuracy rules* when it has ``val_accuracy``
(classification), *loss rules* otherwise (regression, or any task without accuracy).

Only *usable* epochs count: those whose read series are all finite, so a trial whose loss turned
NaN is judged on the epochs before it. Epoch numbers stay those Keras printed (from 1). With
``L``, ``VL`` the training-side and validation loss and ``A``, ``VA`` the training-side and
validation accuracy over the usable epochs:

Metrics (logged on the trial's run)
    ``best_epoch``          the epoch of the highest ``val_accuracy`` (accuracy rules) or the
                            lowest ``val_loss`` (loss rules); the first one on a tie
    ``best_val_accuracy``   ``max(VA)``; ``final_val_accuracy``: ``VA`` at the last epoch
    ``gap_accuracy``        ``A - VA`` at the last epoch (train minus validation)
    ``best_val_loss``       loss rules: ``min(VL)``; ``final_val_loss``: ``VL`` at the last epoch
    ``gap_loss``            ``VL - L`` at the last epoch (validation minus train)
    ``loss_ratio``          loss rules: ``VL / L - 1`` at the last epoch (0.5: validation loss
                            50 % above the training loss)
    ``train_r2``            loss rules with ``train_eval_baseline_loss``: ``1 - min(L) / B``,
                            ``B`` the trivial predictor's loss on the same training rows (for
                            ``mse``, the training R²)
    ``val_loss_rise``       ``(VL[last] - min(VL)) / min(VL)``: 0 while validation loss is at
                            its minimum, 0.25 when it ended 25 % above it

Rules, checked in this order; the first that holds gives the tag. ``w`` is the last
``TREND_WINDOW`` (3) epochs, or all of them when fewer ran: a rule must hold over a trend, since
one noisy epoch on a small validation split moves ``val_loss`` by several percent.

    1. ``overfit`` when validation loss rose clearly while training loss kept falling: at each
       of the last ``w`` epochs ``VL > min(VL) * (1 + diagnosis.val_loss_rise)``, and
       ``L[last] < L`` at the epoch of ``min(VL)`` (both rule sets);
       or, accuracy rules, when the accuracy gap is large: ``A - VA > diagnosis.overfit_gap``
       at each of the last ``w`` epochs;
       or, loss rules, when the loss gap is large: ``VL > L * (1 + diagnosis.overfit_loss_ratio)``
       at each of the last ``w`` epochs.
    2. ``underfit`` when the model does not fit its own training data: accuracy rules,
       ``max(A) < diagnosis.underfit_accuracy``; loss rules (only with the dropout-off loss and
       its baseline), ``train_r2 < diagnosis.underfit_r2``;
       or when both curves were still improving at the last epoch: it set a new ``min(VL)``,
       and both ``L`` and ``VL`` fell by more than ``diagnosis.still_improving`` per epoch
       (relative, from ``w`` epochs before the last to the last; at least 2 epochs needed).
    3. ``good`` otherwise.

Defaults: ``overfit_gap`` 0.05 (5 accuracy points), ``val_loss_rise`` 0.10 (10 % above the
minimum), ``underfit_accuracy`` 0.80, ``still_improving`` 0.02 (2 % per epoch),
``overfit_loss_ratio`` 1.0 (validation loss twice the training loss, i.e. an RMSE 41 % higher
for ``mse``), ``underfit_r2`` 0.5 (the model explains less than half of the trivial predictor's
loss on its own training rows). The first four were set on the bundled 5,000 digits, whose
400-image validation split moves ``val_loss`` by 3-5 % from one epoch to the next: the window
and the 2 % keep a converged model from being called "still improving" by noise, while a model
that gains 2 % or more per epoch over its last three epochs is one that stopped too early. The
loss ratio is wide because a mean squared error on a few hundred rows is a noisy figure (one
large residual moves it by tens of percent): twice the training loss over three epochs is a
generalisation gap, not sampling noise.

Overfitting is checked first: a model that is both weak and far better on its training data
than on unseen data has a variance problem to fix before a capacity one. A history with no
usable epoch (a crash before the first epoch ended, or NaN from epoch 1) has nothing to judge:
:func:`diagnose` returns ``None``. Nor is a trial the pruner stopped judged by these rules: its
history ends where the pruner cut it, so it is the group :data:`PRUNED`, not a verdict.
The logged ``val_loss_rise`` and gaps are the last epoch's values; the tag's ``reason`` says
which rule fired, with which numbers, and which training-side series it read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nnsweep.tasks import BASELINE_KEY, TRAIN_EVAL_PREFIX

if TYPE_CHECKING:
    from nnsweep.spec.config import DiagnosisSpec

FitTag = Literal["underfit", "good", "overfit"]
FIT_TAGS: tuple[FitTag, ...] = ("underfit", "good", "overfit")
# The ``nnsweep.fit`` group of a trial the pruner stopped: its history was cut short on
# purpose, so no rule above is a verdict on it, and reports keep it out of the FIT_TAGS counts.
PRUNED = "pruned"
TREND_WINDOW = 3
_TINY = 1e-12  # guards divisions by a loss of exactly 0
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

    def describe(self) -> str:
        """How the reason names the training side it read."""
        what = self.accuracy if self.mode == "accuracy" else self.loss
        return f"{what} (dropout off)" if self.dropout_off else f"Keras' {what} (dropout on)"


@dataclass(frozen=True)
class Diagnosis:
    """The fit of one trial: the metrics the rules read, the tag, and why.

    ``score`` is the validation series ``best_epoch`` is taken on (``val_accuracy`` or
    ``val_loss``); ``gap`` is ``A - VA`` (accuracy rules) or ``VL / L - 1`` (loss rules).
    """

    fit: FitTag
    reason: str
    epochs: int
    best_epoch: int
    score: str
    best_score: float
    final_score: float
    gap: float
    gap_loss: float
    val_loss_rise: float
    dropout_off: bool
    train_r2: float | None = None

    def metrics(self) -> dict[str, float]:
        """The values logged as MLflow metrics, under the same names on every run of a task."""
        out = {"best_epoch": float(self.best_epoch)}
        if self.score == "val_accuracy":
            out.update(
                best_val_accuracy=self.best_score,
                final_val_accuracy=self.final_score,
                gap_accuracy=self.gap,
            )
        else:
            out.update(best_val_loss=self.best_score, final_val_loss=self.final_score)
            out["loss_ratio"] = self.gap
            if self.train_r2 is not None:
                out["train_r2"] = self.train_r2
        out.update(gap_loss=self.gap_loss, val_loss_rise=self.val_loss_rise)
        return out


def series_of(history: Mapping[str, Sequence[float]]) -> Series:
    """The keys the rules read in ``history`` (see the module docstring).

    Raises:
        ValueError: no ``val_loss``, or an accuracy on one side only.
    """

    def has(key: str) -> bool:
        return len(history.get(key, ())) > 0

    loss = TRAIN_EVAL_PREFIX + "loss" if has(TRAIN_EVAL_PREFIX + "loss") else "loss"
    if not has(loss) or not has("val_loss"):
        present = ", ".join(k for k in history if has(k)) or "nothing"
        raise ValueError(
            f"history has {present} but no {'loss' if not has(loss) else 'val_loss'}; fit with "
            "validation_data so both loss and val_loss are recorded"
        )
    if not has("val_accuracy"):
        return Series("loss", loss)
    acc = TRAIN_EVAL_PREFIX + "accuracy" if has(TRAIN_EVAL_PREFIX + "accuracy") else "accuracy"
    if not has(acc):
        raise ValueError(
            "history has val_accuracy but no accuracy; fit with metrics=['accuracy'] so both "
            "sides are recorded"
        )
    return Series("accuracy", loss, accuracy=acc, val_accuracy="val_accuracy")


def usable_epochs(history: Mapping[str, Sequence[float]]) -> list[int]:
    """Indexes (from 0) of the epochs whose series the rules read are all finite.

    Raises:
        ValueError: a series the rules need is missing, or they differ in length, which no
            Keras history with validation data does.
    """
    if not any(len(v) > 0 for v in history.values()):
        return []
    keys = series_of(history).keys
    lengths = {k: len(history[k]) for k in keys}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history series differ in length ({lengths}); expected one per epoch")
    n = lengths[keys[0]]
    return [i for i in range(n) if all(math.isfinite(float(history[k][i])) for k in keys)]


def _drop_per_epoch(series: Sequence[float], window: int) -> float:
    """Average relative fall per epoch over the last ``window`` steps (negative: it rose)."""
    start, end = series[-1 - window], series[-1]
    return (start - end) / max(abs(start), _TINY) / window


def _baseline(history: Mapping[str, Sequence[float]], series: Series) -> float | None:
    """The trivial predictor's loss on the train-eval rows, when the loss is theirs."""
    if not series.dropout_off:
        return None
    values = [float(v) for v in history.get(BASELINE_KEY, ()) if math.isfinite(float(v))]
    return values[-1] if values and values[-1] > _TINY else None


def diagnose(history: Mapping[str, Sequence[float]], rules: DiagnosisSpec) -> Diagnosis | None:
    """Tag the fit of one trial from its epoch history (the rules are in the module docstring).

    Args:
        history: one list per key, one value per epoch, as Keras' ``History.history`` holds
            it: ``loss``, ``val_loss``, the task's metrics, and ``train_eval_*`` when the fit
            ran :class:`nnsweep.train.traineval.TrainEval`.
        rules: the thresholds, ``spec.diagnosis``.

    Returns:
        The diagnosis, or ``None`` when no epoch has finite values in every series read.

    Raises:
        ValueError: a series is missing or the series differ in length.
    """
    keep = usable_epochs(history)
    if not keep:
        return None
    s = series_of(history)
    loss, val_loss = ([float(history[k][i]) for i in keep] for k in (s.loss, s.val_loss))
    n = len(keep)
    min_vl_i = min(range(n), key=lambda i: (val_loss[i], i))
    min_vl = val_loss[min_vl_i]
    rise = (val_loss[-1] - min_vl) / max(min_vl, _TINY)
    w = min(TREND_WINDOW, n)

    # Both rule sets: validation loss climbing while the training loss falls. Each rule reads
    # the last few epochs, not the last one alone: one noisy epoch of a 400-image validation
    # split moves val_loss by several percent.
    found: tuple[FitTag, str] | None = None
    if all(v > min_vl * (1 + rules.val_loss_rise) for v in val_loss[-w:]) and (
        loss[-1] < loss[min_vl_i]
    ):
        found = (
            "overfit",
            f"val_loss stayed over {rules.val_loss_rise:.0%} above its minimum {min_vl:.4g} "
            f"(epoch {keep[min_vl_i] + 1}) for the last {w} epochs, ending {rise:.0%} above it, "
            f"while {s.loss} kept falling ({loss[min_vl_i]:.4g} -> {loss[-1]:.4g}); "
            f"limit diagnosis.val_loss_rise={rules.val_loss_rise:g}",
        )
    if s.mode == "accuracy":
        acc_keys = (s.accuracy or "accuracy", s.val_accuracy or "val_accuracy")
        acc, val_acc = ([float(history[k][i]) for i in keep] for k in acc_keys)
        best_i = max(range(n), key=lambda i: (val_acc[i], -i))
        best, final, gap = val_acc[best_i], val_acc[-1], acc[-1] - val_acc[-1]
        found = found or _accuracy_rules(acc, val_acc, s, rules, w)
        train_r2 = None
    else:
        best_i, best, final = min_vl_i, min_vl, val_loss[-1]
        gap = val_loss[-1] / max(loss[-1], _TINY) - 1
        baseline = _baseline(history, s)
        train_r2 = None if baseline is None else 1 - min(loss) / baseline
        found = found or _loss_rules(loss, val_loss, s, rules, w, train_r2)
    if found is None and n >= 2 and min_vl_i == n - 1 and _still_improving(loss, val_loss, rules):
        steps = min(TREND_WINDOW, n - 1)
        drop_l, drop_vl = _drop_per_epoch(loss, steps), _drop_per_epoch(val_loss, steps)
        found = (
            "underfit",
            f"still improving at the last epoch (a new val_loss minimum): {s.loss} fell "
            f"{drop_l:.1%} and val_loss {drop_vl:.1%} per epoch over the last {steps} epoch"
            f"{'s' if steps > 1 else ''}; limit "
            f"diagnosis.still_improving={rules.still_improving:g}; train longer",
        )
    if found is None:
        shown = f"gap {gap:+.3f}" if s.mode == "accuracy" else f"val_loss/loss {gap + 1:.2f}"
        found = (
            "good",
            f"no rule fired: {shown} at the last epoch by {s.describe()}, val_loss {rise:.0%} "
            "above its minimum",
        )
    return Diagnosis(
        fit=found[0],
        reason=found[1],
        epochs=n,
        best_epoch=keep[best_i] + 1,
        score=s.val_accuracy or s.val_loss,
        best_score=best,
        final_score=final,
        gap=gap,
        gap_loss=val_loss[-1] - loss[-1],
        val_loss_rise=rise,
        dropout_off=s.dropout_off,
        train_r2=train_r2,
    )


def _accuracy_rules(
    acc: list[float], val_acc: list[float], s: Series, rules: DiagnosisSpec, w: int
) -> tuple[FitTag, str] | None:
    if all(a - va > rules.overfit_gap for a, va in zip(acc[-w:], val_acc[-w:], strict=True)):
        return (
            "overfit",
            f"train accuracy by {s.describe()} stayed over {rules.overfit_gap:g} above "
            f"val_accuracy for the last {w} epochs, ending {acc[-1]:.3f} vs {val_acc[-1]:.3f}; "
            f"limit diagnosis.overfit_gap={rules.overfit_gap:g}",
        )
    if max(acc) < rules.underfit_accuracy:
        return (
            "underfit",
            f"train accuracy by {s.describe()} never reached diagnosis.underfit_accuracy="
            f"{rules.underfit_accuracy:g} (best {max(acc):.3f})",
        )
    return None


def _loss_rules(
    loss: list[float],
    val_loss: list[float],
    s: Series,
    rules: DiagnosisSpec,
    w: int,
    train_r2: float | None,
) -> tuple[FitTag, str] | None:
    limit = 1 + rules.overfit_loss_ratio
    if all(vl > lo * limit for lo, vl in zip(loss[-w:], val_loss[-w:], strict=True)):
        return (
            "overfit",
            f"val_loss stayed over {limit:g}x the training loss by {s.describe()} for the last "
            f"{w} epochs, ending {val_loss[-1]:.4g} vs {loss[-1]:.4g}; limit "
            f"diagnosis.overfit_loss_ratio={rules.overfit_loss_ratio:g}",
        )
    if train_r2 is not None and train_r2 < rules.underfit_r2:
        return (
            "underfit",
            f"on its own training rows the model explains {train_r2:.2f} of the trivial "
            f"predictor's loss (best {s.loss} {min(loss):.4g}); below "
            f"diagnosis.underfit_r2={rules.underfit_r2:g}",
        )
    return None


def _still_improving(loss: list[float], val_loss: list[float], rules: DiagnosisSpec) -> bool:
    steps = min(TREND_WINDOW, len(loss) - 1)
    return (
        _drop_per_epoch(loss, steps) > rules.still_improving
        and _drop_per_epoch(val_loss, steps) > rules.still_improving
    )
