"""Optuna's sampler and pruner for a sweep, each trial's draws seeded by its trial number.

Seeding a sampler once per process (``seed``) makes two processes started by hand on one
study draw the same first trials. Here every trial gets a fresh sampler seeded from the sweep's
seed and the trial's number, which the storage hands out uniquely across processes: workers
never repeat each other's draws, a resumed sweep never replays its first ones, and one process
on fresh stores draws exactly the same trials every time. Model-based samplers lose nothing:
TPE, CMA-ES, NSGA-II and the grid keep their state in the study, not in the sampler object.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler, GridSampler

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState

    from nnsweep.spec.config import SweepSpec


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number`` of a sweep seeded ``seed`` (well mixed, 32 bits)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def make_sampler(spec: SweepSpec, seed: int | None = None) -> BaseSampler:
    """The sampler the spec names, seeded by ``seed`` (default: the sweep's seed)."""
    import optuna.samplers as s
    from optuna.exceptions import ExperimentalWarning

    seed = spec.seed if seed is None else seed
    name = spec.sampler.name
    startup = spec.sampler.n_startup_trials
    if name == "tpe":
        # constant_liar: trials still running elsewhere count as bad results, so side-by-side
        # workers spread out instead of drawing next to each other; a single process has no
        # other running trial, so its draws are unchanged
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            if startup is None:
                return s.TPESampler(seed=seed, constant_liar=True)
            return s.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "cmaes":
        if startup is None:
            return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False, n_startup_trials=startup)
    if name == "qmc":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return s.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        # always the sweep's seed: it shuffles the grid, and Optuna gives trial N the N-th
        # point of that order; a seed per trial would shuffle it anew and repeat points
        return GridSampler(grid_space(spec), seed=spec.seed)
    if name == "nsga2":  # its generations live in the study's trials, not in the object
        return s.NSGAIISampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


class TrialSeededSampler(BaseSampler):
    """Draws each trial with a new sampler seeded by (sweep seed, trial number).

    Args:
        make: builds the sampler for a seed.
        seed: the sweep's seed.
    """

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._current = make(seed)

    @property
    def base(self) -> BaseSampler:
        """The sampler drawing the current (or, before any trial, the first) trial."""
        return self._current

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._current = self._make(trial_seed(self._seed, trial.number))
        self._current.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._current.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._current.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._current.reseed_rng()


def sweep_sampler(spec: SweepSpec) -> BaseSampler:
    """The study's sampler: trial-seeded, except QMC, whose scrambling must stay one sequence
    (its points are numbered by the study, so processes do not repeat them)."""
    if spec.sampler.name == "qmc":
        return make_sampler(spec)
    return TrialSeededSampler(lambda seed: make_sampler(spec, seed), spec.seed)


def grid_exhausted(study: optuna.Study) -> bool:
    """Whether the study's grid sampler has run every point of its grid (False otherwise)."""
    sampler = study.sampler
    if isinstance(sampler, TrialSeededSampler):
        sampler = sampler.base
    return isinstance(sampler, GridSampler) and sampler.is_exhausted(study)


def grid_space(spec: SweepSpec) -> dict[str, list[Any]]:
    """The finite grid of every sampled parameter, as ``GridSampler`` wants it."""
    space: dict[str, list[Any]] = {}
    dims = spec.space.dimensions()
    dims["batch_size"] = spec.batch_size_dim
    dims["epochs"] = spec.epochs_dim
    for key, dim in dims.items():
        if dim.is_fixed:
            continue
        values = dim.grid_values()
        assert values is not None  # config rejects continuous ranges for grid
        if key == "units":
            max_layers = max(spec.space.n_layers.grid_values() or [1])
            space.update({f"units_{i}": values for i in range(int(max_layers))})
        else:
            space[key] = values
    return space


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """The pruner the spec names (Hyperband's largest budget: the sweep's epoch budget, times
    the folds under cross-validation)."""
    import optuna.pruners as p

    cfg = spec.pruner
    if cfg.name == "median":
        return p.MedianPruner(
            n_startup_trials=cfg.n_startup_trials, n_warmup_steps=cfg.n_warmup_steps
        )
    if cfg.name == "hyperband":
        return p.HyperbandPruner(
            min_resource=cfg.min_resource,
            max_resource=spec.max_epochs * _folds(spec),
            reduction_factor=cfg.reduction_factor,
        )
    if cfg.name == "successive_halving":
        return p.SuccessiveHalvingPruner(
            min_resource=cfg.min_resource, reduction_factor=cfg.reduction_factor
        )
    return p.NopPruner()


def _folds(spec: SweepSpec) -> int:
    """K under K-fold cross-validation (a trial then reports K * epochs steps, see
    :mod:`nnsweep.train.cv`), else 1."""
    folds = getattr(spec.dataset.validation, "folds", None)
    return int(folds) if folds else 1
