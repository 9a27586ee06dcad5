"""The trials a study ran itself, apart from the history a warm start copied into it.

A warm start in history mode (:mod:`nnsweep.study.warm`) adds an earlier study's finished
trials to a new one, marked ``nnsweep.history``, so the sampler starts informed. They were never
trained in this study, have no MLflow run and no model: they never count towards the target,
the best trial, the report or the stop rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnsweep.names import HISTORY_ATTR
from nnsweep.study.objectives import primary_direction, primary_order, primary_value

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def is_history(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was copied from an earlier study (never trained in this one)."""
    return HISTORY_ATTR in trial.user_attrs


def own_complete(study: optuna.Study) -> list[FrozenTrial]:
    """The study's COMPLETE trials that it ran itself (history left out)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in done if not is_history(t)]


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """:func:`own_complete` trials with a value, best first by the primary value in the
    primary objective's direction (ties: a multi-objective study's smaller second value, then
    the earlier trial; :func:`nnsweep.study.objectives.primary_order`)."""
    done = [t for t in own_complete(study) if primary_value(t) is not None]
    return sorted(done, key=primary_order(primary_direction(study)))


def own_best(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial the study ran itself, or None: by the primary value on a
    multi-objective study. Single-objective without history: Optuna's ``best_trial`` (its
    pick among ties)."""
    done = ranked(study)
    if not done:
        return None
    if len(study.directions) == 1 and not any(
        is_history(t) for t in study.get_trials(deepcopy=False)
    ):
        return study.best_trial
    return done[0]
