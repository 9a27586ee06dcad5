"""Which sweep files a multi-objective study (``objective.also``) can run, and why not.

Checked with the rest of the file (:class:`nnsweep.spec.config.SweepSpec`), so a combination
that cannot work is refused with one line naming the field and the fix before anything runs.
"""

from __future__ import annotations

from typing import Any

# pruners that can judge a multi-objective trial on its primary metric alone (nnsweep.train.prune):
# Hyperband and successive halving keep per-trial rung state in the study they prune in
MULTI_OBJECTIVE_PRUNERS = ("median", "none")


def multi_objective_problem(spec: Any) -> str | None:
    """Why ``spec``'s ``objective.also`` cannot run with the rest of the file, or None.

    ``spec`` is the :class:`~nnsweep.spec.config.SweepSpec` being validated (typed ``Any``:
    config imports this module, so this one may not import config back, not even for types).
    """
    also = spec.objective.also
    if also is None:
        return None
    if spec.sampler.name == "cmaes":
        return (
            f"sampler: cmaes optimises one objective, but objective.also is {also}; use "
            "sampler: nsga2, tpe, random, qmc or grid, or drop objective.also"
        )
    if spec.pruner.name not in MULTI_OBJECTIVE_PRUNERS:
        return (
            f"pruner: {spec.pruner.name} cannot judge a multi-objective trial (its rungs live "
            f"in the study), but objective.also is {also}; use pruner: median or none"
        )
    if spec.stop is not None and spec.stop.active:
        return (
            f"stop: converged watches one objective, but objective.also is {also} (a front "
            "improves without its best value moving); drop stop or objective.also"
        )
    return None
