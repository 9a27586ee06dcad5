"""Fit diagnosis: read a trial's epoch history and give the weights it keeps a verdict.

A pure function of the Keras history (one value per epoch and key), the epoch whose weights the
trial keeps, and the thresholds of the sweep file's ``diagnosis:`` section
(:class:`nnsweep.spec.config.DiagnosisSpec`). Nothing here imports Keras or MLflow. The
figures the rules read are computed in :mod:`nnsweep.train.fitfigures`.

The verdicts, and what to do next
    ``overfit``             validation got worse after its best epoch: the weights are past
                            the point where they generalised best. Stop earlier (``reduce:
                            best``, early stopping) or regularise (dropout, fewer units).
    ``generalisation_gap``  validation is still at its best, but the model scores clearly
                            better on its training rows: a stable gap. Nothing to stop; more
                            data or more regularisation may narrow it.
    ``underfit``            the model learnt little beyond the trivial predictor (majority
                            class, training mean) even on its own training rows, or it was
                            still improving when training ended: more capacity, a higher
                            learning rate, or more epochs.
    ``good``                none of the above.
    ``pruned``              (:data:`PRUNED`) not a verdict: the pruner cut the history short.

Which epoch is judged
    The epoch whose weights the trial keeps and export ships (``weights_epoch``: the best epoch
    under ``reduce: best``, the last under ``reduce: last``, the restored one under early
    stopping); the last usable epoch when it is not given. The run may go on after it; what
    happened later is not the exported model's fault, and the reason says so when the run
    overfit after the kept epoch.

Which series the rules read
    Validation: ``val_loss`` and, where the task has it, ``val_accuracy``. Training side: the
    *dropout-off* ``train_eval_loss`` / ``train_eval_accuracy`` of :mod:`nnsweep.train.traineval`
    when logged, else Keras' dropout-on ``loss`` / ``accuracy`` (older runs; the reason says
    which). ``B`` is ``train_eval_baseline_loss``: the trivial predictor's loss on the same
    training rows (class frequencies; the training mean, whose variance-weighted MSE is about 1).
    *Accuracy rules* when the history has ``val_accuracy``, *loss rules* otherwise.

    Only *usable* epochs count: those whose read series are all finite. Epoch numbers stay
    those Keras printed (from 1).

Figures (at the judged epoch ``E``; a *level* is the mean over the 3 epochs ending at an
epoch, so one noisy epoch of a small validation split does not decide)
    ``val_loss_rise``       the val_loss level at ``E`` over its lowest level up to ``E``, minus 1
    ``val_accuracy_drop``   the best val_accuracy level up to ``E`` minus the level at ``E``
    ``gap_accuracy``        train minus validation accuracy, mean over the 3 epochs to ``E``
    ``loss_ratio``          ``VL / L - 1``, mean over the 3 epochs to ``E``
    ``gap_loss``            ``VL - L``, same epochs; ``gap_baseline``: ``gap_loss / B``
    ``train_skill``         ``1 - L[E] / B``: how much of the trivial predictor's loss the model
                            removed on its training rows (for ``mse``: the training R², logged as
                            ``train_r2`` by the loss rules)

Rules, in this order; the first that holds gives the verdict, and ``rule`` names the figure,
its value and the threshold (``fit_figure`` logs the value):

    1. ``overfit``: ``val_loss_rise > diagnosis.val_loss_rise`` while the training loss fell
       from the lowest level's epoch to ``E``; or (accuracy rules)
       ``val_accuracy_drop > diagnosis.val_accuracy_drop``.
    2. ``underfit``: ``train_skill < diagnosis.underfit_skill`` (needs ``B``: the dropout-off
       loss); or still improving at the last epoch, ``E`` being it: a new val_loss minimum, and
       both ``L`` and ``VL`` fell by more than ``diagnosis.still_improving`` per epoch over the
       last 3 epochs (at least 2 epochs needed).
    3. ``generalisation_gap``: accuracy rules, ``error_ratio > diagnosis.error_ratio`` (the
       validation error rate over the training one, minus 1, mean of 3 epochs; a training
       error under 0.5 % counts as 0.5 %) and ``gap_accuracy > diagnosis.overfit_gap``; loss
       rules, ``loss_ratio > diagnosis.overfit_loss_ratio`` and (when ``B`` is known)
       ``gap_baseline > diagnosis.loss_gap``: a ratio alone calls a model with R² 0.9975
       against 0.999 on its training rows a gap, since twice a tiny loss is still tiny.
    4. ``good`` otherwise.

Defaults and why (calibrated on the quickstart's 30 trials, docs/diagnosis.md):
``val_loss_rise`` 0.15: at the kept epoch the rise of those trials falls in two groups, 0 to
0.124 (noise of a 400-image split, which moves val_loss by 5-10 % an epoch) and 0.22 to 0.49
(three trials whose val_loss climbs for ten epochs). ``val_accuracy_drop`` 0.02: two
standard errors of accuracy on 400 images. ``underfit_skill`` 0.10: a model that removes less
than a tenth of the trivial predictor's loss on the very rows it trained on has learnt next to
nothing, while a task capped at a low accuracy still lets a fitted model remove far more.
``error_ratio`` 1.0 and ``overfit_gap`` 0.02: twice as many errors on validation as on the
training rows, and at least two points of accuracy (two standard errors) between them.
``overfit_loss_ratio`` 1.0 (twice the training loss) with ``loss_gap`` 0.05 (5 % of the
trivial predictor's loss), ``still_improving`` 0.02 (2 % per epoch).

A history with no usable epoch has nothing to judge: :func:`diagnose` returns ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nnsweep.tasks import BASELINE_KEY, TRAIN_EVAL_PREFIX
from nnsweep.train.fitfigures import TINY, TREND_WINDOW, Figures, Series, figures
from nnsweep.train.fitrules import judge

if TYPE_CHECKING:
    from nnsweep.spec.config import DiagnosisSpec

FitTag = Literal["underfit", "good", "generalisation_gap", "overfit"]
FIT_TAGS: tuple[FitTag, ...] = ("underfit", "good", "generalisation_gap", "overfit")
# what each verdict asks of the user, for reports and docs
NEXT_STEP: dict[str, str] = {
    "underfit": "more capacity, a higher learning rate or more epochs",
    "good": "nothing to fix",
    "generalisation_gap": "more data or regularisation may narrow the gap; nothing to stop",
    "overfit": "stop earlier or regularise",
}
# The ``nnsweep.fit`` group of a trial the pruner stopped: its history was cut short on
# purpose, so no rule above is a verdict on it, and reports keep it out of the FIT_TAGS counts.
PRUNED = "pruned"
__all__ = ["FIT_TAGS", "PRUNED", "TREND_WINDOW", "Diagnosis", "diagnose", "usable_epochs"]


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one trial's kept weights: the figures the rules read, the tag, and why.

    ``judged_epoch`` is the epoch (from 1) the verdict describes; ``best_epoch`` the epoch of
    the best validation score (``score``: ``val_accuracy`` or ``val_loss``); ``rule`` names
    the figure that decided, its value and threshold, and ``figure`` is that value.
    """

    fit: FitTag
    reason: str
    rule: str
    figure: float
    epochs: int
    judged_epoch: int
    best_epoch: int
    score: str
    best_score: float
    final_score: float
    figures: Figures
    dropout_off: bool

    @property
    def gap(self) -> float:
        """The train/validation gap at the judged epoch: accuracy gap or loss ratio."""
        f = self.figures
        return f.gap_accuracy if f.gap_accuracy is not None else f.loss_ratio

    @property
    def val_loss_rise(self) -> float:
        return self.figures.rise

    def metrics(self) -> dict[str, float]:
        """The values logged as MLflow metrics, under the same names on every run of a task."""
        f = self.figures
        out = {"best_epoch": float(self.best_epoch), "judged_epoch": float(self.judged_epoch)}
        if self.score == "val_accuracy":
            out.update(best_val_accuracy=self.best_score, final_val_accuracy=self.final_score)
            out["gap_accuracy"] = float(f.gap_accuracy or 0.0)
            out["val_accuracy_drop"] = float(f.drop or 0.0)
            if f.train_skill is not None:
                out["train_skill"] = f.train_skill
        else:
            out.update(best_val_loss=self.best_score, final_val_loss=self.final_score)
            out["loss_ratio"] = f.loss_ratio
            if f.train_skill is not None:
                out["train_r2"] = f.train_skill
            if f.gap_baseline is not None:
                out["gap_baseline"] = f.gap_baseline
        out.update(gap_loss=f.gap_loss, val_loss_rise=f.rise, fit_figure=self.figure)
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


def _baseline(history: Mapping[str, Sequence[float]], series: Series) -> float | None:
    """The trivial predictor's loss on the train-eval rows, when the loss is theirs."""
    if not series.dropout_off:
        return None
    values = [float(v) for v in history.get(BASELINE_KEY, ()) if math.isfinite(float(v))]
    return values[-1] if values and values[-1] > TINY else None


def diagnose(
    history: Mapping[str, Sequence[float]],
    rules: DiagnosisSpec,
    weights_epoch: int | None = None,
) -> Diagnosis | None:
    """The verdict on a trial's kept weights from its epoch history (rules: module docstring).

    Args:
        history: one list per key, one value per epoch, as Keras' ``History.history`` holds
            it: ``loss``, ``val_loss``, the task's metrics, and ``train_eval_*`` when the fit
            ran :class:`nnsweep.train.traineval.TrainEval`.
        rules: the thresholds, ``spec.diagnosis``.
        weights_epoch: the epoch (from 1) whose weights the trial keeps; ``None``: the last.

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
    acc = val_acc = None
    if s.mode == "accuracy":
        acc_keys = (s.accuracy or "accuracy", s.val_accuracy or "val_accuracy")
        acc, val_acc = ([float(history[k][i]) for i in keep] for k in acc_keys)
    # the judged epoch: the last usable one at or before the kept weights' epoch
    at = len(keep) - 1
    if weights_epoch is not None:
        at = max((j for j, i in enumerate(keep) if i + 1 <= weights_epoch), default=0)
    fig = figures(at, loss, val_loss, acc, val_acc, _baseline(history, s))
    fit, rule, figure, reason = judge(fig, s, rules, loss, val_loss, acc, val_acc, keep)
    n = len(keep)
    if val_acc is not None:
        best_i = max(range(n), key=lambda i: (val_acc[i], -i))
        best, final = val_acc[best_i], val_acc[-1]
    else:
        best_i = min(range(n), key=lambda i: (val_loss[i], i))
        best, final = val_loss[best_i], val_loss[-1]
    return Diagnosis(
        fit=fit,
        reason=reason,
        rule=rule,
        figure=figure,
        epochs=n,
        judged_epoch=keep[at] + 1,
        best_epoch=keep[best_i] + 1,
        score=s.val_accuracy or s.val_loss,
        best_score=best,
        final_score=final,
        figures=fig,
        dropout_off=s.dropout_off,
    )


__all__ += ["NEXT_STEP", "Series"]
