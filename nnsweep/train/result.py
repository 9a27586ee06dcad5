"""What one trial produced, carried forward in one object: :class:`TrialResult`, and the step type.

The objective (:mod:`nnsweep.train.objective`) sets a result's fields once; the steps
(:mod:`nnsweep.train.steps`, the model logger of :mod:`nnsweep.train.modellog`) receive it as
``step(trial, result)`` and only read it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from nnsweep.train.diagnosis import Diagnosis
    from nnsweep.train.model import HyperParams


@dataclass
class FoldScores:
    """What the folds of a cross-validated trial gave (:mod:`nnsweep.train.cv`): each finished
    fold's objective value and the epoch whose weights it kept; the fold that was pruned."""

    k: int
    values: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    pruned_fold: int | None = None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Population standard deviation over the folds (0 for one fold)."""
        return statistics.pstdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def epoch(self) -> int:
        """The epochs a refit on the whole training part trains: the folds' mean, rounded."""
        return max(1, round(statistics.fmean(self.epochs)))


class TrialFailure(Exception):
    """A trial that cannot give a value (NaN loss, …). Fails the trial, not the sweep."""


@dataclass
class TrialResult:
    """Everything one trial produced, set once by the :class:`Objective`, read by the steps.

    Like Keras' ``History`` or Optuna's ``FrozenTrial`` it carries a finished fit forward, so
    no step recomputes what the objective already knew.

    Attributes:
        number: the Optuna trial number.
        run_id: the trial's MLflow child run.
        params: the sampled hyperparameters.
        input_example: the first training rows (an array, or a table's input dict), logged
            with the model.
        history: one value per epoch and Keras metric, as the fit logged them.
        seconds: wall time of ``model.fit``.
        state: ``COMPLETE``, ``PRUNED`` or ``FAIL`` (Optuna's words).
        reason: why a trial failed or was pruned; ``None`` for a COMPLETE one.
        value: the objective value (COMPLETE trials only).
        diagnosis: the fit diagnosis (``None`` with no usable epoch).
        pruned_at: the epoch after which the pruner stopped the fit.
        weights_epoch: the epoch (from 1) whose weights ``model`` holds.
        weights_score: that epoch's value of the objective metric (for ``reduce: best`` and a
            COMPLETE trial, equal to ``value``).
        model: the fitted Keras model, dropped when the trial's run closes (cross-validated:
            the last fold's).
        cv: the folds' scores of a cross-validated trial, ``None`` for a holdout one.
    """

    number: int
    run_id: str
    params: HyperParams
    input_example: Any
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    state: str = "FAIL"
    reason: str | None = None
    value: float | None = None
    diagnosis: Diagnosis | None = None
    pruned_at: int | None = None
    weights_epoch: int | None = None
    weights_score: float | None = None
    model: Any = None
    cv: FoldScores | None = None

    @property
    def epochs_run(self) -> int:
        """Epochs that ended (a NaN epoch included)."""
        return len(self.history.get("loss", []))


Step = Callable[["optuna.Trial", TrialResult], None]
"""Called after each fit as ``step(trial, result)``, pruned and failed trials included."""
