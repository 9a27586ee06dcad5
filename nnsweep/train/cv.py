"""K-fold cross-validation of one trial: the fold loop, its pruning rule and its MLflow curves.

With ``dataset.validation: {folds: K}`` (or ``auto`` on a small table) a trial fits its
hyperparameters K times, once per fold of the training part (:mod:`nnsweep.data.folds`: each
fold with its own preprocessing, the same folds for every trial), on one MLflow run.

**Value.** Each fold's objective is reduced over its own epochs as a holdout trial's is (the
best, or the last, epoch's ``val_accuracy``…, the epoch whose weights the fold kept); the
trial's value is the **mean over the K folds** of those values. Their standard deviation is the
spread the card and report show (``cv_std_<metric>``).

**Pruning.** After each epoch of fold ``k`` (from 0) the trial reports, at step
``k * E + epoch`` (``E`` = the sweep's largest epoch budget, so steps only grow and mean the
same fold and epoch in every trial), the mean over folds so far: the values of the folds
``0 … k-1`` and the current fold's value so far (its best, or last, epoch yet). The last
report of a finished trial is therefore its value. Optuna's pruners compare a trial with the
others at the same step, i.e. on the same folds: a trial is cut on what its folds have
shown, never on a fold it has not reached. The means go through the trial's
:class:`~nnsweep.train.prune.PruneGate`, which judges a multi-objective trial the same way.

**MLflow.** Each fold's epochs are logged live as ``fold<k>_<key>`` (``fold0_val_accuracy``,
step = epoch); when the trial ends the usual keys (``val_accuracy``, ``loss``, …) get the fold
mean at each epoch (over the folds that reached it), so the runs table, the comparison charts,
the diagnosis and ``learning_curves.png`` read the mean curves. ``cv_<metric>`` holds each
fold's value at step = fold, ``cv_std_<metric>`` their standard deviation, ``cv_folds`` K.

**Refit.** The weights epoch of a cross-validated trial (``weights_epoch``) is the mean of the
folds' chosen epochs, rounded: export refits the hyperparameters on the whole training part for
that many epochs (:func:`nnsweep.train.retrain.retrain`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from nnsweep.data.folds import Fold, make_folds
from nnsweep.train.result import FoldScores, TrialFailure, TrialResult

if TYPE_CHECKING:
    import optuna

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec
    from nnsweep.track.tracker import Tracker
    from nnsweep.train.prune import PruneGate

FOLD_PREFIX = "fold{k}_"
CV_FOLDS_METRIC = "cv_folds"


def cv_metric(metric: str) -> str:
    """``cv_val_accuracy``: each fold's value of the objective ``metric``, step = fold."""
    return f"cv_{metric}"


def cv_std_metric(metric: str) -> str:
    """``cv_std_val_accuracy``: the standard deviation over folds of the objective ``metric``."""
    return f"cv_std_{metric}"


FitFold = Callable[..., None]
"""``fit(trial, result, data, prefix=…, pruning=…, gate=…)``: one fit of a trial's hyperparameters
(:meth:`nnsweep.train.objective.Objective._fit`)."""


class CrossValidation:
    """The folds of a sweep's dataset (made once) and the fold loop run for each trial."""

    def __init__(self, spec: SweepSpec, dataset: Dataset, tracker: Tracker) -> None:
        self.spec, self.tracker = spec, tracker
        self.folds: list[Fold] = make_folds(dataset, spec.seed)
        self.step_span = spec.max_epochs  # steps reserved per fold

    def run(self, trial: optuna.Trial, result: TrialResult, fit: FitFold, gate: PruneGate) -> None:
        """Fit every fold (or until pruned), then set ``result``: mean history, value, weights
        epoch and score, seconds, the last fold's model and :class:`FoldScores` (``result.cv``).

        Raises:
            TrialFailure: a fold recorded no finite objective value (or its loss turned NaN).
        """
        obj = self.spec.objective
        scores = FoldScores(len(self.folds))
        result.cv = scores
        histories: list[dict[str, list[float]]] = []
        try:
            for fold in self.folds:
                one = TrialResult(result.number, result.run_id, result.params, None)
                histories.append(one.history)
                reporter = _reporter_class()(
                    gate, obj.metric, obj.direction == "maximize", obj.reduce,
                    done=list(scores.values), first_step=fold.number * self.step_span,
                )  # fmt: skip
                try:
                    fit(trial, one, fold.data, prefix=FOLD_PREFIX.format(k=fold.number),
                        pruning=reporter, gate=gate)  # fmt: skip
                finally:
                    result.seconds += one.seconds
                    result.model = one.model
                if one.pruned_at is not None:
                    scores.pruned_fold, result.pruned_at = fold.number, one.pruned_at
                    return
                if one.weights_score is None or one.weights_epoch is None:
                    raise TrialFailure(f"fold {fold.number}: no finite {obj.metric} was recorded")
                scores.values.append(one.weights_score)
                scores.epochs.append(one.weights_epoch)
            result.value = scores.mean
            result.weights_epoch, result.weights_score = scores.epoch, scores.mean
        finally:
            result.history = mean_history(histories)
            self._log(result, scores)

    def _log(self, result: TrialResult, scores: FoldScores) -> None:
        """The mean curves (usual keys, step = epoch) and the folds' values on the trial's run."""
        run_id, metric = result.run_id, self.spec.objective.key
        n_epochs = max((len(v) for v in result.history.values()), default=0)
        for epoch in range(1, n_epochs + 1):
            logs = {k: v[epoch - 1] for k, v in result.history.items() if len(v) >= epoch}
            self.tracker.log_epoch(run_id, logs, epoch)
        for k, value in enumerate(scores.values):
            self.tracker.log_metrics(run_id, {cv_metric(metric): value}, step=k)
        summary: dict[str, float] = {CV_FOLDS_METRIC: float(scores.k)}
        if scores.values:
            summary[cv_std_metric(metric)] = scores.std
        self.tracker.log_metrics(run_id, summary)


def mean_history(histories: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per key and epoch, the mean over the folds (finite values only; NaN when no fold has a
    finite one). A fold that stopped early counts with its last value at the later epochs:
    averaging only the folds still running would show the survivors, a late curve better than
    any model the folds have."""
    keys = [k for h in histories for k in h]
    out: dict[str, list[float]] = {}
    for key in dict.fromkeys(keys):
        curves = [h[key] for h in histories if h.get(key)]
        length = max((len(c) for c in curves), default=0)
        curves = [c + [c[-1]] * (length - len(c)) for c in curves]
        means = []
        for i in range(length):
            values = [c[i] for c in curves if math.isfinite(c[i])]
            means.append(statistics.fmean(values) if values else math.nan)
        out[key] = means
    return out


def pruned_where(scores: FoldScores | None, epoch: int) -> str:
    """``"fold 2 of 5, epoch 3"`` (cross-validated) or ``"epoch 3"``: where a trial was cut."""
    if scores is None or scores.pruned_fold is None:
        return f"epoch {epoch}"
    return f"fold {scores.pruned_fold + 1} of {scores.k}, epoch {epoch}"


@cache
def _reporter_class() -> type:
    """The Keras callback that reports a fold's epochs to Optuna (defined on first use)."""
    import keras

    class FoldReporter(keras.callbacks.Callback):
        """Reports the mean over folds so far at step ``first_step + epoch``; stops the fit
        when the pruner says so (``pruned_at``: that epoch, from 1)."""

        def __init__(
            self,
            gate: PruneGate,
            metric: str,
            maximize: bool,
            how: str,
            *,
            done: list[float],
            first_step: int,
        ) -> None:
            super().__init__()
            self.gate, self.metric, self.maximize, self.how = gate, metric, maximize, how
            self.done, self.first_step = done, first_step
            self.current: float | None = None
            self.pruned_at: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = float((logs or {}).get(self.metric, float("nan")))
            if not math.isfinite(value):
                return
            better = self.current is None or (
                value > self.current if self.maximize else value < self.current
            )
            if self.how == "last" or better:
                self.current = value
            assert self.current is not None
            mean = statistics.fmean([*self.done, self.current])
            if self.gate.report(mean, step=self.first_step + epoch + 1):
                self.pruned_at = epoch + 1
                self.model.stop_training = True

    return FoldReporter
