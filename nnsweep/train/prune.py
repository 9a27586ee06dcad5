"""Pruning a trial on its primary metric, in single- and multi-objective studies alike.

The fit's callbacks (:mod:`nnsweep.train.callbacks`, and the fold reporter of
:mod:`nnsweep.train.cv`) hand each step's value of the objective's metric to a
:class:`PruneGate` and stop the fit when it answers True.

**Single-objective study**: the gate is Optuna's own path, ``trial.report(value, step)`` then
``trial.should_prune()``, with the study's pruner.

**Multi-objective study** (``objective.also``): Optuna cannot prune one (``Trial.report`` raises
``NotImplementedError``), so the gate judges the **primary metric** itself, with the same pruner
object the study was made with (:func:`nnsweep.study.samplers.make_pruner`):

1. each step's value is recorded on the trial as the user attribute ``primary_curve``
   (``{"step": value}``), so finished trials carry the curve Optuna would have stored;
2. the peers are the study's finished trials (COMPLETE and PRUNED; warm-start history left
   out) whose **second objective is no worse than this trial's** (``also`` at most this
   trial's: at least as small, or as fast). A trial is never pruned for trailing bigger or
   slower models: those are on another part of the front, and the front's small end survives;
3. the pruner decides on an in-memory single-objective shadow study in the primary metric's
   direction, holding those peers (their primary value and curve) and this trial as a RUNNING
   trial with its curve so far: ``pruner.prune(shadow, trial)``, Optuna's public API.

So the median pruner cuts a multi-objective trial when its best primary value so far is worse
than the median, at the same step, of the COMPLETE trials at least as small as it; its
``n_startup_trials`` and ``n_warmup_steps`` count those trials and this trial's steps as they
would in a single-objective study. A trial smaller than every finished one has no peer and is
never pruned. A pruned trial is told PRUNED (no values), its reason names the rule and how many
trials it was judged against (:attr:`PruneGate.peers`).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from nnsweep.study.objectives import PRIMARY_CURVE_ATTR, is_multi, trial_also
from nnsweep.study.own import is_history

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class PruneGate:
    """Whether a trial should stop, from its primary metric's value at each step.

    Args:
        trial: the running Optuna trial.
        also: the trial's second objective (multi-objective studies; set before the first
            :meth:`report`, since it picks the peers).
    """

    def __init__(self, trial: optuna.Trial, also: float | None = None) -> None:
        self.trial = trial
        self.also = also
        self.multi = is_multi(trial.study)
        self.curve: dict[int, float] = {}
        self.peers: int | None = None  # COMPLETE peers the last multi-objective decision used

    def report(self, value: float, step: int) -> bool:
        """Record ``value`` at ``step``; True when the trial should be pruned now."""
        if not self.multi:
            self.trial.report(value, step=step)
            return bool(self.trial.should_prune())
        self.curve[step] = value
        self.trial.set_user_attr(PRIMARY_CURVE_ATTR, {str(k): v for k, v in self.curve.items()})
        return self._judge()

    def _judge(self) -> bool:
        import optuna
        from optuna.trial import TrialState, create_trial

        study = self.trial.study
        shadow = optuna.create_study(direction=study.directions[0])
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        peers = [t for t in study.get_trials(deepcopy=False, states=states) if self._is_peer(t)]
        with warnings.catch_warnings():  # a PRUNED peer with no curve warns; it is harmless
            warnings.simplefilter("ignore")
            for t in peers:
                shadow.add_trial(_shadow_copy(t))
            shadow.add_trial(create_trial(state=TrialState.RUNNING, intermediate_values=self.curve))
        self.peers = sum(t.state == TrialState.COMPLETE for t in peers)
        return bool(study.pruner.prune(shadow, shadow.get_trials(deepcopy=False)[-1]))

    def _is_peer(self, trial: FrozenTrial) -> bool:
        """A finished trial of this study whose second objective is no worse than this one's."""
        if trial.number == self.trial.number or is_history(trial):
            return False
        other = trial_also(trial)
        return other is not None and self.also is not None and other <= self.also

    def describe(self, metric: str, also_metric: str | None) -> str:
        """How a multi-objective trial was judged, for its pruned reason ("" otherwise)."""
        if not self.multi or self.peers is None:
            return ""
        what = {"params": "as small", "latency_ms": "as fast"}.get(str(also_metric), "as good")
        return (
            f", judged on {metric} against the {self.peers} COMPLETE trial(s) at least {what} "
            f"({also_metric})"
        )


def _shadow_copy(trial: FrozenTrial) -> FrozenTrial:
    """``trial`` as a single-objective trial of the primary metric: its primary value and its
    recorded per-step curve."""
    from optuna.trial import TrialState, create_trial

    curve = {
        int(k): float(v)
        for k, v in (trial.user_attrs.get(PRIMARY_CURVE_ATTR) or {}).items()
        if math.isfinite(float(v))
    }
    if trial.state == TrialState.COMPLETE and trial.values:
        return create_trial(value=float(trial.values[0]), intermediate_values=curve)
    return create_trial(state=TrialState.PRUNED, intermediate_values=curve)
