"""The ``diagnosis`` section of a sweep file: the thresholds of the fit verdicts."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from nnsweep.spec._strict import Strict


class DiagnosisSpec(Strict):
    """Thresholds of the fit verdicts (the rules: :mod:`nnsweep.train.diagnosis`; all read at
    the epoch whose weights are kept, with levels = means over 3 epochs).

    ``val_loss_rise``: the val_loss level over its lowest level by more than this while the
    training loss fell = overfit. ``val_accuracy_drop``: the val_accuracy level below its best
    level by more than this = overfit. ``underfit_skill``: the training loss under ``(1 - this)``
    times the trivial predictor's loss not reached = underfit. ``still_improving``: loss and
    val_loss both still falling by more than this fraction per epoch at the end (and a new
    val_loss minimum at the last epoch) = underfit. ``error_ratio`` and ``overfit_gap``: the
    validation error rate over ``(1 + error_ratio)`` times the training one and train minus
    validation accuracy over ``overfit_gap`` = generalisation_gap. Tasks without accuracy
    (regression): ``overfit_loss_ratio`` and ``loss_gap``: val_loss over ``train loss *
    (1 + ratio)`` and over it by more than ``loss_gap`` times the trivial predictor's loss =
    generalisation_gap.
    The retired ``underfit_accuracy`` and ``underfit_r2`` (a fixed bar that a task capped below
    it never clears) are read and ignored, so sweep files and studies from before still load.
    """

    overfit_gap: float = Field(0.02, gt=0.0, lt=1.0)
    error_ratio: float = Field(1.0, gt=0.0)
    val_loss_rise: float = Field(0.15, gt=0.0)
    val_accuracy_drop: float = Field(0.02, gt=0.0, lt=1.0)
    underfit_skill: float = Field(0.10, gt=0.0, lt=1.0)
    still_improving: float = Field(0.02, ge=0.0)
    overfit_loss_ratio: float = Field(1.0, gt=0.0)
    loss_gap: float = Field(0.05, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in RETIRED_DIAGNOSIS_KEYS}
        return data


RETIRED_DIAGNOSIS_KEYS = ("underfit_accuracy", "underfit_r2")
