"""What happens to a trial after its fit: the steps that write its results to MLflow.

Each step is called as ``step(trial, run_id, result, state)`` for every trial, pruned and
failed ones included, before the trial's run is closed. A step must not raise for a trial
with a short or empty history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from .config import SweepSpec
    from .objective import TrialResult
    from .tracking import Tracker

Step = Callable[["optuna.Trial", str, "TrialResult", str], None]


def default_steps(spec: SweepSpec, tracker: Tracker) -> list[Step]:
    """The steps every sweep runs, in order."""

    def log_timing(trial: optuna.Trial, run_id: str, result: TrialResult, state: str) -> None:
        epochs = len(result.history.get("loss", []))
        metrics: dict[str, Any] = {"epochs_run": epochs, "train_seconds": result.seconds}
        tracker.log_metrics(run_id, metrics)

    return [log_timing]
