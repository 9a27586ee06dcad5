"""A study's own Pareto front: its COMPLETE trials that no other one beats on both objectives.

A trial is on the front when no other COMPLETE trial the study ran itself is at least as good
on every objective and better on one (Optuna's ``Study.best_trials``, computed over the
study's own trials: history a warm start copied in is left out, :mod:`nnsweep.study.own`).
Two trials with equal values do not dominate each other: both are on the front.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from nnsweep.study.objectives import is_multi, primary_order
from nnsweep.study.own import own_best, own_complete

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines off for a while (``A new study created in memory``: a copy made to
    compute something is no news to the user)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def front_of_trials(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """The non-dominated ones of ``trials`` (COMPLETE, with values) under ``directions``
    (``"maximize"``/``"minimize"`` per objective), sorted by
    :func:`~nnsweep.study.objectives.primary_order`."""
    import optuna
    from optuna.study import StudyDirection

    if not trials:
        return []
    with quiet_optuna():
        copy = optuna.create_study(directions=[StudyDirection[d.upper()] for d in directions])
    copy.add_trials(trials)
    # the copy numbers its trials 0, 1, … in the order of ``trials``
    on_front = [trials[t.number] for t in copy.best_trials]
    return sorted(on_front, key=primary_order(directions[0]))


def directions_of(study: optuna.Study) -> list[str]:
    """The study's directions as ``"maximize"``/``"minimize"``, primary first."""
    return [d.name.lower() for d in study.directions]


def own_front(study: optuna.Study) -> list[FrozenTrial]:
    """The study's own COMPLETE trials on its Pareto front, best primary value first (ties:
    the smaller second value, then the earlier trial). Single-objective: the best trial."""
    if not is_multi(study):
        best = own_best(study)
        return [] if best is None else [best]
    return front_of_trials(own_complete(study), directions_of(study))
