"""The stop rule of ``stop: converged``: end a study once more trials are unlikely to help.

After every trial, on the shared study (so ``--jobs`` workers, and workers on other machines,
decide alike), the rule compares the best objective value of the study's own COMPLETE trials
with the best before the last ``patience`` of them, in the order they completed. It fires when
the improvement is smaller than ``min_delta``, by default the validation score's own noise:

* ``val_accuracy`` / ``val_auc``: the standard error of a proportion ``p`` (the best score)
  measured on ``n`` validation rows, Wilson's at z = 1:
  ``sqrt(p(1-p)/n + 1/(4n²)) / (1 + 1/n)``, the same score interval the model card's test
  figures use (:func:`nnsweep.export.intervals.wilson`). At p = 0.95 on 400 rows it is ±1.1
  points: a "better" trial inside it may simply have drawn easier validation rows.
* losses and errors (``val_loss``, ``val_mae``): 1 % of the best value, since their noise
  has no closed form without the residuals.

Why a window of COMPLETE trials and not Optuna's Terminator: the Terminator's regret bound
fits a Gaussian process (PyTorch), which nnsweep does not install, and its decision cannot be
read back as one figure. Here the two figures are logged on the parent run for every trial
(``stop_improvement`` and ``stop_threshold``, step = trial number), and the reason is stored on
the study (``nnsweep.stopped``, with the COMPLETE count it was decided at), so ``nnsweep run``
can say why whichever worker decided. Every worker evaluates the rule on the shared study before
it starts a trial, so all of them stop at the same point.

A multi-objective sweep (``objective.also``) cannot ask for the rule (the sweep file is refused:
a front improves at its small end while its best primary value stands still).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnsweep.names import STOP_KEY, SURPLUS_ATTR
from nnsweep.study.objectives import primary_value
from nnsweep.study.own import own_complete

if TYPE_CHECKING:
    import optuna

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec
    from nnsweep.spec.stop import StopSpec

PROPORTIONS = ("val_accuracy", "val_auc")  # scores in [0, 1] measured over validation rows
RELATIVE_NOISE = 0.01  # other metrics: this share of the best value
IMPROVEMENT_METRIC, THRESHOLD_METRIC = "stop_improvement", "stop_threshold"

LogFigures = Callable[[int, dict[str, float]], None]


def proportion_noise(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` over ``n`` rows (Wilson's interval at z = 1)."""
    if n <= 0:
        return math.inf
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / n + 1 / (4 * n * n)) / (1 + 1 / n)


@dataclass(frozen=True)
class Decision:
    """The rule's figures after one trial, and whether it fires."""

    n_complete: int
    improvement: float | None = None  # of the best over the window (None: too few trials)
    threshold: float | None = None
    reason: str | None = None  # set when the rule fires

    @property
    def fires(self) -> bool:
        return self.reason is not None


class StopRule:
    """Optuna callback beside the budget: sets ``stop`` once the study has converged.

    Args:
        spec: the sweep's ``stop`` section.
        metric, direction: the objective.
        val_rows: validation rows a score is measured on (the noise's ``n``).
        log: called with (trial number, figures) after each trial, to log them.
    """

    def __init__(
        self,
        spec: StopSpec,
        metric: str,
        direction: str,
        val_rows: int,
        log: LogFigures | None = None,
    ) -> None:
        self.spec, self.metric, self.val_rows, self.log = spec, metric, val_rows, log
        self.maximize = direction == "maximize"
        self.stop = False
        self.reason: str | None = None

    def threshold(self, best: float) -> tuple[float, str]:
        """(the improvement that counts, how it reads in the reason)."""
        if self.spec.min_delta is not None:
            return self.spec.min_delta, f"min_delta {self.spec.min_delta:g}"
        if self.metric in PROPORTIONS:
            noise = proportion_noise(best, self.val_rows)
            return noise, f"the {self.val_rows:,}-row validation noise of ±{_points(noise)}"
        noise = RELATIVE_NOISE * abs(best)
        return noise, f"{RELATIVE_NOISE:.0%} of the best ({noise:.4g})".replace("%", " %")

    def decide(self, study: optuna.Study) -> Decision:
        """The rule on the study as it is now."""
        trials = sorted(
            (t for t in own_complete(study) if primary_value(t) is not None),
            key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number),
        )
        n, patience = len(trials), self.spec.patience
        if n <= patience:
            return Decision(n)
        pick = max if self.maximize else min
        values = [float(primary_value(t)) for t in trials]  # type: ignore[arg-type]
        before, now = pick(values[: n - patience]), pick(values)
        improvement = abs(now - before)
        threshold, what = self.threshold(now)
        if n < self.spec.min_trials or improvement >= threshold:
            return Decision(n, improvement, threshold)
        by = (
            f"{_points(improvement)} points"
            if self.metric in PROPORTIONS and self.spec.min_delta is None
            else f"{improvement:.4g}"
        )
        reason = (
            f"stopped after {n} COMPLETE trials: the best {self.metric} improved by {by} over "
            f"the last {patience}, less than {what}"
        )
        return Decision(n, improvement, threshold, reason)

    def check(self, study: optuna.Study) -> bool:
        """Whether to start no more trials: the rule fired here or in another worker."""
        if not self.spec.active:
            return False
        if not self.stop:
            self._fire(study, self.decide(study))
        return self.stop

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self.spec.active or trial.user_attrs.get(SURPLUS_ATTR):
            return
        decision = self.decide(study)
        if self.log is not None and decision.improvement is not None:
            figures = {IMPROVEMENT_METRIC: decision.improvement}
            figures[THRESHOLD_METRIC] = float(decision.threshold or 0.0)
            self.log(trial.number, figures)
        self._fire(study, decision)

    def _fire(self, study: optuna.Study, decision: Decision) -> None:
        if not decision.fires or self.stop:
            return
        self.stop, self.reason = True, decision.reason
        stored = study.user_attrs.get(STOP_KEY) or {}
        if stored.get("n_complete") != decision.n_complete:  # once per decision, all workers
            study.set_user_attr(
                STOP_KEY, {"reason": decision.reason, "n_complete": decision.n_complete}
            )


def stop_reason(study: optuna.Study) -> str | None:
    """Why the stop rule ended ``study``, if it did and no trial has completed since."""
    stored = study.user_attrs.get(STOP_KEY) or {}
    if stored.get("n_complete") != len(own_complete(study)):
        return None
    return str(stored.get("reason")) or None


def _points(value: float) -> str:
    """A proportion as points of percentage: 0.0123 → ``1.2``; small ones keep two digits."""
    shown = value * 100
    return f"{shown:.1f}" if shown >= 0.95 else f"{shown:.2f}"


def stop_rule(spec: SweepSpec, dataset: Dataset, log: LogFigures | None = None) -> StopRule:
    """The rule of ``spec.stop`` (one that never fires when the sweep file has none), its
    noise measured on the validation split's rows (all training rows under cross-validation,
    where each is validated once)."""
    from nnsweep.spec.stop import StopSpec

    section = spec.stop or StopSpec(when="never")
    rows = dataset.sizes.get("val") or dataset.sizes["train"]
    metric, direction = str(spec.objective.metric), str(spec.objective.direction)
    return StopRule(section, metric, direction, rows, log)
