"""Bound warnings and the next sweep, on real Optuna storages: a space whose optimum lies past
an edge (learning rate, log-scale layer widths, either edge) is flagged and widened exactly
there; a space that holds its optimum is not; the sweep file ``--save-sweep`` writes parses
and warm-starts a new study from the old one's best trials.

The studies are synthetic (no training): each trial draws its point through the sweep's own
space (:func:`~nnsweep.train.objective.sample_params`, as the objective does) and is told a
value computed from it. A few trials are enqueued in one region, as a model-based sampler
crowds the region it finds best."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from nnsweep.names import PARAMS_ATTR
from nnsweep.results.bounds import Bounds, bounds_of, widen
from nnsweep.results.importance import best_trials, what_we_learned
from nnsweep.results.nextsweep import next_sweep, save_sweep
from nnsweep.spec.config import SweepSpec, load_spec, parse_spec
from nnsweep.study.storage import create_or_resume, load_study
from nnsweep.study.warm import apply_warm_start, plan_warm_start
from nnsweep.sweep.prepare import prepare
from nnsweep.train.model import HyperParams
from nnsweep.train.objective import sample_params

SPACE = """name: {name}
dataset: {{name: mnist_5k, validation: 0.1}}
trials: 40
seed: 0
sampler: random
space:
  n_layers: {{low: 1, high: 2}}
  units: {{low: 16, high: 64, log: true}}
  activation: [relu, tanh]
  learning_rate: {{low: 1.0e-4, high: 3.0e-3, log: true}}
"""
LR_LOW, LR_HIGH = 1e-4, 3e-3


def _position(lr: float) -> float:
    """Where ``lr`` lies in the learning-rate range, in log space."""
    return math.log(lr / LR_LOW) / math.log(LR_HIGH / LR_LOW)


def _lr_at(position: float) -> float:
    return LR_LOW * (LR_HIGH / LR_LOW) ** position


def _study(
    url: str,
    value: Callable[[HyperParams], float],
    crowd: list[dict[str, Any]],
    *,
    name: str = "old",
    n_random: int = 24,
) -> tuple[optuna.Study, SweepSpec]:
    """``n_random`` trials drawn at random from the space, then one per ``crowd`` point (the
    params it names enqueued, the rest drawn); each told ``value`` of its point plus noise."""
    spec, dataset = prepare(parse_spec(SPACE.format(name=name)))
    study = create_or_resume(spec, url, name, dataset=dataset)
    rng = np.random.default_rng(0)
    for i in range(n_random + len(crowd)):
        if i >= n_random:
            study.enqueue_trial(crowd[i - n_random])
        trial = study.ask()
        params = sample_params(trial, spec)
        trial.set_user_attr(PARAMS_ATTR, params.as_params())
        study.tell(trial, value(params) + float(rng.normal(0, 1e-3)))
    return study, spec


def _log_units(p: HyperParams) -> float:
    return float(np.mean([math.log2(u) for u in p.units]))


def test_a_learning_rate_capped_below_the_optimum_is_flagged_and_widened(tmp_path: Path) -> None:
    crowd = [{"learning_rate": _lr_at(x)} for x in (0.92, 0.95, 0.97, 0.99, 1.0, 0.93)]
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study, _ = _study(url, lambda p: _position(p.learning_rate), crowd)
    learned = what_we_learned(study)
    assert list(learned.importances)[0] == "learning_rate"
    assert [w.dimension for w in learned.warnings] == ["learning_rate"]
    (warning,) = learned.warnings
    assert (warning.edge, warning.bound, warning.trials) == ("upper", LR_HIGH, 5)
    assert warning.near == warning.values == 5
    # the range widened past the upper edge by half its log span: 3e-3 * sqrt(30) ≈ 0.0164
    assert warning.widened == Bounds(LR_LOW, 0.016, log=True)
    assert warning.line() == (
        "learning_rate: the 5 best trials are within 10 % of the upper bound 0.003 (log scale):"
        " widen it (next: 0.0001..0.016, log)"
    )
    shown = "\n".join(learned.lines())
    assert "bound warning: learning_rate:" in shown and "upper bound 0.003" in shown


def test_a_space_that_holds_its_optimum_gets_no_warning(tmp_path: Path) -> None:
    """The value peaks mid-range in learning rate and mid-range in width; the sampler
    crowds the peak: nothing to widen."""

    def peak(p: HyperParams) -> float:
        return -((_position(p.learning_rate) - 0.5) ** 2) - 0.3 * (_log_units(p) - 5.0) ** 2

    mid = ((0.45, 30), (0.5, 32), (0.55, 34), (0.48, 31), (0.52, 33), (0.5, 35))
    crowd = [{"learning_rate": _lr_at(x), "n_layers": 1, "units_0": u} for x, u in mid]
    study, _ = _study(f"sqlite:///{tmp_path / 'optuna.db'}", peak, crowd)
    learned = what_we_learned(study)
    assert "learning_rate" in learned.importances  # it matters, and its best sit mid-range
    assert learned.top == 5 and learned.warnings == []
    assert "  no bound warning: the 5 best trials sit inside every range" in learned.lines()
    best = best_trials(study)
    assert all(0.3 < _position(t.params["learning_rate"]) < 0.7 for t in best)


def test_layer_widths_at_the_upper_bound_of_a_log_range_are_flagged(tmp_path: Path) -> None:
    """``units`` is an integer dimension drawn per layer (``units_0``, ``units_1``): the
    warning counts each layer's width and widens the range to 128 (x2 = sqrt(64 / 16))."""
    crowd = [{"n_layers": 1, "units_0": u} for u in (60, 62, 64, 63, 58, 61)]
    study, _ = _study(f"sqlite:///{tmp_path / 'optuna.db'}", _log_units, crowd)
    learned = what_we_learned(study)
    units = [w for w in learned.warnings if w.dimension == "units"]
    assert len(units) == 1 and [w.dimension for w in learned.warnings] == ["units"]
    (warning,) = units
    assert (warning.edge, warning.bound) == ("upper", 64)
    assert warning.bounds == Bounds(16, 64, log=True, integer=True)
    assert warning.widened == Bounds(16, 128, log=True, integer=True)
    assert warning.line().endswith("(log scale): widen it (next: 16..128, log)")
    data = next_sweep(study, learned)
    assert data["space"]["units"] == {"low": 16, "high": 128, "log": True}


def test_a_lower_bound_is_flagged_and_widened_downwards(tmp_path: Path) -> None:
    crowd = [{"learning_rate": _lr_at(x)} for x in (0.0, 0.02, 0.05, 0.08, 0.03, 0.06)]
    study, _ = _study(
        f"sqlite:///{tmp_path / 'optuna.db'}", lambda p: -_position(p.learning_rate), crowd
    )
    learned = what_we_learned(study)
    assert [(w.dimension, w.edge, w.bound) for w in learned.warnings] == [
        ("learning_rate", "lower", LR_LOW)
    ]
    # 1e-4 / sqrt(30) ≈ 1.83e-5, kept to two significant digits
    assert learned.warnings[0].widened == Bounds(1.8e-5, LR_HIGH, log=True)
    assert "lower bound 0.0001 (log scale): widen it (next: 1.8e-05..0.003, log)" in (
        learned.warnings[0].line()
    )


@pytest.mark.parametrize(
    ("dimension", "bounds", "edge", "widened"),
    [
        # a linear integer range grows by half its span, within the sweep file's limits
        ("n_layers", Bounds(1, 4, integer=True), "upper", Bounds(1, 6, integer=True)),
        ("n_layers", Bounds(1, 4, integer=True), "lower", None),  # 1 is the limit
        ("units", Bounds(16, 64, log=True, integer=True), "lower", Bounds(8, 64, True, None, True)),
        ("dropout", Bounds(0.0, 0.8), "upper", Bounds(0.0, 0.9)),  # capped at 0.9
        ("dropout", Bounds(0.0, 0.9), "upper", None),
        # batch-size choices double past the largest
        ("batch_size", Bounds(32, 128, choices=(32.0, 64.0, 128.0), integer=True), "upper",
         Bounds(32, 256, choices=(32.0, 64.0, 128.0, 256.0), integer=True)),
    ],
)  # fmt: skip
def test_widen_moves_only_the_flagged_edge(
    dimension: str, bounds: Bounds, edge: str, widened: Bounds | None
) -> None:
    assert widen(dimension, bounds, edge) == widened


def test_the_saved_next_sweep_widens_the_flagged_bound_and_warm_starts(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path / 'optuna.log'}"
    crowd = [{"learning_rate": _lr_at(x)} for x in (0.92, 0.95, 0.97, 0.99, 1.0, 0.93)]
    study, spec = _study(url, lambda p: _position(p.learning_rate), crowd)
    learned = what_we_learned(study)
    assert [w.dimension for w in learned.warnings] == ["learning_rate"]

    path = save_sweep(study, learned, tmp_path / "next" / "old-2.yaml")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# The next sweep after study old: widened learning_rate;")
    nxt = load_spec(path)  # a valid sweep file, read as `nnsweep run` reads it
    assert nxt == parse_spec(text)
    assert nxt.name == "old-2" and nxt.trials == 40
    assert nxt.warm_start is not None
    assert (nxt.warm_start.study, nxt.warm_start.top, nxt.warm_start.mode) == ("old", 5, "enqueue")
    # exactly the flagged bound moved; every other dimension as the first sweep had it
    old_dims, new_dims = spec.space.dimensions(), nxt.space.dimensions()
    assert new_dims["learning_rate"].raw() == {"low": LR_LOW, "high": 0.016, "log": True}
    assert {k: v.raw() for k, v in new_dims.items() if k != "learning_rate"} == {
        k: v.raw() for k, v in old_dims.items() if k != "learning_rate"
    }
    drawn = bounds_of(study.best_trial.distributions["learning_rate"])
    assert drawn == Bounds(LR_LOW, LR_HIGH, log=True)  # the old study is left as it was

    # as `nnsweep run old-2.yaml` does: the new study begins with the old one's 5 best
    spec2, dataset = prepare(nxt)
    plan = plan_warm_start(spec2, dataset, url, "old-2")
    assert plan is not None and plan.mode == "enqueue" and len(plan.enqueue) == 5
    new = create_or_resume(spec2, url, "old-2", dataset=dataset)
    assert apply_warm_start(new, plan)
    for earlier in best_trials(load_study("old", url)):
        trial = new.ask()
        got = sample_params(trial, spec2).as_params()
        new.tell(trial, 0.0)
        assert got["learning_rate"] == pytest.approx(earlier.params["learning_rate"])
        assert got["n_layers"] == earlier.params["n_layers"]
        assert got["activation"] == earlier.params["activation"]
        assert [got[f"units_{i}"] for i in range(got["n_layers"])] == [
            earlier.params[f"units_{i}"] for i in range(earlier.params["n_layers"])
        ]
    # the new trials draw from the widened range
    assert new.trials[0].distributions["learning_rate"].high == 0.016
