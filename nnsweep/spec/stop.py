"""The ``stop:`` section: end a study before its budget once more trials are unlikely to help.

``stop: converged`` (or ``stop: {when: converged, patience: 10}``) stops a sweep when the best
objective value improved by less than ``min_delta`` over the last ``patience`` COMPLETE trials.
Left out, ``min_delta`` is the validation score's own noise: for ``val_accuracy`` the standard
error of an accuracy measured on the validation split (about ±1.1 points at 0.95 on 400 rows),
for other metrics 1 % of the best value. The rule itself runs in :mod:`nnsweep.sweep.stop`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from nnsweep.spec._strict import Strict, shorthand
from nnsweep.spec.limits import MAX_TRIALS

DEFAULT_PATIENCE = 10


class StopSpec(Strict):
    """When a study may stop before ``trials`` (``when: never``: it runs its whole budget).

    ``patience``: the last N COMPLETE trials the improvement is measured over.
    ``min_trials``: never stop before this many COMPLETE trials (at least ``patience + 1``).
    ``min_delta``: the improvement that counts, in the objective's units (0.002 = 0.2 points
    of accuracy); left out: the validation noise (see the module docstring).
    """

    when: Literal["converged", "never"] = "converged"
    patience: int = Field(DEFAULT_PATIENCE, ge=2, le=MAX_TRIALS)
    min_trials: int = Field(0, ge=0, le=MAX_TRIALS)
    min_delta: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _min_trials_after_patience(self) -> StopSpec:
        if self.min_trials and self.min_trials <= self.patience:
            raise ValueError(
                f"min_trials must be > patience (the rule compares with the best before the "
                f"last {self.patience} trials), but got {self.min_trials}; raise it or drop it"
            )
        return self

    @property
    def active(self) -> bool:
        return self.when != "never"


StopField = Annotated[StopSpec | None, shorthand("when")]
