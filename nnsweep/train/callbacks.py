"""The Keras callbacks a trial fits with: interrupts, epoch logging, pruning, kept weights."""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Any

from nnsweep._proc import check_interrupt

if TYPE_CHECKING:
    from nnsweep.track.tracker import Tracker
    from nnsweep.train.prune import PruneGate


@cache
def callback_classes() -> tuple[type, type, type, type]:
    """The trial's Keras callbacks (Interrupter, EpochLogger, PruningCallback, WeightKeeper),
    defined on first use so importing this module skips Keras; four small classes, one
    factory, hence its length."""
    import keras

    class Interrupter(keras.callbacks.Callback):
        """Raises a pending Ctrl-C between batches and epochs, never inside a callback's write."""

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            check_interrupt()

        def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            check_interrupt()

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            check_interrupt()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            check_interrupt()  # first in the list: before this epoch is logged or reported

    class EpochLogger(keras.callbacks.Callback):
        """Keeps the history and logs each epoch's metrics to the trial's MLflow run (keys
        after ``prefix``: ``fold0_val_accuracy`` for a fold of a cross-validated trial)."""

        def __init__(
            self, tracker: Tracker, run_id: str, history: dict[str, list[float]], prefix: str = ""
        ):
            super().__init__()
            self.tracker, self.run_id, self.history = tracker, run_id, history
            self.prefix = prefix
            self.nan_epoch: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            for k, v in logs.items():
                self.history.setdefault(k, []).append(v)
            logged = {f"{self.prefix}{k}": v for k, v in logs.items()} if self.prefix else logs
            self.tracker.log_epoch(self.run_id, logged, epoch + 1)
            if not all(math.isfinite(v) for v in logs.values()):
                self.nan_epoch = epoch + 1
                self.model.stop_training = True

    class PruningCallback(keras.callbacks.Callback):
        """Hands the validation metric to the trial's :class:`~nnsweep.train.prune.PruneGate`
        every epoch; stops the fit when pruned."""

        def __init__(self, gate: PruneGate, metric: str):
            super().__init__()
            self.gate, self.metric = gate, metric
            self.pruned_at: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = float((logs or {}).get(self.metric, float("nan")))
            if not math.isfinite(value):
                return
            if self.gate.report(value, step=epoch + 1):
                self.pruned_at = epoch + 1
                self.model.stop_training = True

    class WeightKeeper(keras.callbacks.Callback):
        """Keeps a copy of the weights of the epoch the objective reduces to.

        ``how="best"``: the first epoch with the best finite ``metric`` (the epoch whose value
        :func:`reduce_history` returns); ``"last"``: the last epoch with a finite one. Call
        :meth:`restore` after the fit: callbacks after this one (early stopping) may have set
        other weights.
        """

        def __init__(self, metric: str, maximize: bool, how: str):
            super().__init__()
            self.metric, self.maximize, self.how = metric, maximize, how
            self.epoch: int | None = None
            self.score: float | None = None
            self.weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = float((logs or {}).get(self.metric, float("nan")))
            if not math.isfinite(value):
                return
            better = self.score is None or (
                value > self.score if self.maximize else value < self.score
            )
            if self.how == "last" or better:
                self.epoch, self.score = epoch + 1, value
                self.weights = self.model.get_weights()  # copies, a few MB at most

        def restore(self) -> None:
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return Interrupter, EpochLogger, PruningCallback, WeightKeeper
