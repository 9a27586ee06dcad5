"""Warm starts on real Optuna storages: the K best of an earlier study enqueued and mapped into
a new space, history from a comparable study (TPE starts informed), and a non-comparable study
that can only be enqueued. The studies are synthetic (no training); the data is the real
bundled digits, whose fingerprint the comparable check reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from nnsweep.errors import NoCompleteTrialError, SpecError
from nnsweep.names import HISTORY_ATTR, PARAMS_ATTR, WARM_START_KEY
from nnsweep.spec.config import SweepSpec, parse_spec
from nnsweep.study.own import own_complete
from nnsweep.study.storage import best_trial, create_or_resume, load_study
from nnsweep.study.warm import apply_warm_start, map_value, plan_warm_start
from nnsweep.sweep.prepare import prepare
from nnsweep.train.objective import sample_params, target_counts
from tests.conftest import CliResult, Stores

SPACE = """name: {name}
dataset: {{name: mnist_5k, validation: 0.1}}
trials: 20
seed: {seed}
sampler: tpe
space:
  n_layers: {{low: 1, high: 2}}
  units: {{low: {units_low}, high: 64, log: true}}
  activation: [relu, tanh]
  learning_rate: {{low: 1.0e-4, high: {lr_high}, log: true}}
{extra}"""


def _text(name: str, *, seed: int = 0, lr_high: str = "3.0e-3", units_low: int = 16) -> str:
    return SPACE.format(name=name, seed=seed, lr_high=lr_high, units_low=units_low, extra="")


def _spec(name: str, **changes: Any) -> SweepSpec:
    return parse_spec(_text(name, **changes))


def _earlier(url: str, n: int = 12, seed: int = 0) -> optuna.Study:
    """A finished study of ``n`` trials whose value grows with the learning rate."""
    spec, dataset = prepare(_spec("old", seed=seed))
    study = create_or_resume(spec, url, "old", dataset=dataset)
    dists = {
        "n_layers": IntDistribution(1, 2),
        "units_0": IntDistribution(16, 64, log=True),
        "activation": CategoricalDistribution(["relu", "tanh"]),
        "learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
    }
    for i in range(n):
        params = {
            "n_layers": 1,
            "units_0": 16 + 3 * i,
            "activation": "tanh" if i % 2 else "relu",
            "learning_rate": 1e-4 * (1.25**i),
        }
        full = {**params, "optimizer": "adam", "lr_schedule": "constant", "dropout": 0.0}
        full |= {"epochs": 10, "batch_size": 128}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                value=0.5 + 0.03 * i,  # the last trials, highest learning rates, are best
                user_attrs={PARAMS_ATTR: full},
            )
        )
    return study


def _first_params(study: optuna.Study, spec: SweepSpec, k: int = 1) -> list[dict[str, Any]]:
    out = []
    for _ in range(k):
        trial = study.ask()
        out.append(sample_params(trial, spec).as_params())
        study.tell(trial, 0.0)
    return out


def test_a_warm_started_study_begins_with_the_earlier_top_k_mapped(tmp_path: Path) -> None:
    earlier_url = f"journal:///{tmp_path / 'old.log'}"  # the earlier study in a journal file
    new_url = f"sqlite:///{tmp_path / 'new.db'}"  # the new one elsewhere
    earlier = _earlier(earlier_url)
    top = sorted(own_complete(earlier), key=lambda t: -(t.value or 0))[:3]
    # the new space: learning rate capped at 1e-3, tanh gone, units from 50, dropout a range
    text = _text("new", lr_high="1.0e-3", units_low=50).replace("[relu, tanh]", "[relu, elu]")
    text += "  dropout: {low: 0.1, high: 0.3}\n"
    text += f"warm_start: {{study: old, top: 3, storage: '{earlier_url}'}}\n"
    spec, dataset = prepare(parse_spec(text))
    plan = plan_warm_start(spec, dataset, new_url, "new")
    assert plan is not None and plan.mode == "enqueue" and len(plan.enqueue) == 3
    study = create_or_resume(spec, new_url, "new", dataset=dataset)
    assert apply_warm_start(study, plan)
    first = _first_params(study, spec, 3)
    for got, earlier_trial in zip(first, top, strict=True):
        old = earlier_trial.params
        assert got["learning_rate"] == pytest.approx(min(old["learning_rate"], 1e-3))
        assert got["units_0"] == max(old["units_0"], 50)
        assert got["n_layers"] == old["n_layers"]
        if old["activation"] == "relu":
            assert got["activation"] == "relu"
        assert got["dropout"] == 0.1  # it was fixed at 0.0: clipped into the range
    notes = " | ".join(plan.notes)
    assert "learning_rate: clipped into the new range" in notes
    assert "units: clipped into the new range" in notes
    assert "activation: 'tanh' is no longer a choice, drawn by the sampler" in notes
    assert "dropout: clipped into the new range" in notes
    assert study.user_attrs[WARM_START_KEY].startswith(
        "warm start: the 3 best trials of study old enqueued (journal:///"
    )
    # a resume plans nothing: the study has trials
    assert plan_warm_start(spec, dataset, new_url, "new") is None


def test_history_from_a_comparable_study_informs_tpe(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _earlier(url, n=14)
    warm_text = _text("new") + "warm_start: {study: old, mode: history}\n"
    warm_spec, dataset = prepare(parse_spec(warm_text))
    cold_spec, _ = prepare(_spec("cold"))
    plan = plan_warm_start(warm_spec, dataset, url, "new")
    assert plan is not None and len(plan.history) == 14 and not plan.notes
    warm = create_or_resume(warm_spec, url, "new", dataset=dataset)
    apply_warm_start(warm, plan)
    cold = create_or_resume(cold_spec, url, "cold", dataset=dataset)
    assert len(warm.trials) == 14 and all(HISTORY_ATTR in t.user_attrs for t in warm.trials)
    # history never counts: not towards the target, not as the best trial
    assert target_counts(warm, "complete") == (0, 0)
    with pytest.raises(NoCompleteTrialError):
        best_trial(warm)
    warm_first = _first_params(warm, warm_spec, 3)
    cold_first = _first_params(cold, cold_spec, 3)
    assert warm_first[0] != cold_first[0]
    # TPE (past its 10 startup trials thanks to the history) draws near the best region:
    # the history's best learning rates are the highest, 1.3e-3..2.3e-3
    warm_lr = sorted(p["learning_rate"] for p in warm_first)
    cold_lr = sorted(p["learning_rate"] for p in cold_first)
    assert warm_lr[1] > cold_lr[1]
    assert warm_lr[1] > 8e-4


def test_a_study_that_is_not_comparable_can_only_be_enqueued(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _earlier(url, seed=7)  # another seed: another validation split, scores not comparable
    text = _text("new")
    history, dataset = prepare(parse_spec(text + "warm_start: {study: old, mode: history}\n"))
    with pytest.raises(SpecError, match=r"warm_start.mode: history needs .* seed 7 \(now 0\)"):
        plan_warm_start(history, dataset, url, "new")
    assert "new" not in [s.study_name for s in optuna.get_all_study_summaries(url)]
    enqueue, _ = prepare(parse_spec(text + "warm_start: {study: old, top: 2}\n"))
    plan = plan_warm_start(enqueue, dataset, url, "new")
    assert plan is not None and len(plan.enqueue) == 2 and not plan.history


@pytest.mark.parametrize(
    ("value", "dim", "expected", "how"),
    [
        (5e-3, "lr", 1e-3, "clipped into the new range"),
        (5e-4, "lr", 5e-4, ""),
        (100, "batch", 128, "moved to the nearest choice"),
        ("elu", "act", None, "'elu' is no longer a choice, drawn by the sampler"),
        (0.3, "drop", 0.0, "fixed at 0.0 now, earlier values dropped"),
        (7, "step", 8, "clipped into the new range"),
    ],
)
def test_values_map_into_the_new_space(value: Any, dim: str, expected: Any, how: str) -> None:
    from nnsweep.spec.space import Choice, Fixed, FloatRange, IntRange

    dims = {
        "lr": FloatRange(1e-4, 1e-3, log=True),
        "batch": Choice((32, 128)),
        "act": Choice(("relu", "tanh")),
        "drop": Fixed(0.0),
        "step": IntRange(4, 16, step=4),
    }
    assert map_value(value, dims[dim]) == (expected, how)


def test_a_missing_earlier_study_is_refused_before_anything_is_written(
    stores: Stores, write_sweep: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    sweep = write_sweep(warm_start={"study": "nowhere"})
    ran = cli("run", sweep, *stores.args, "--jobs", "1")
    assert ran.code == 2
    assert "no study 'nowhere'" in ran.err
    bad = cli("run", sweep, *stores.args, "--warm-start", "old:x")
    assert bad.code == 2 and "--warm-start" in bad.err
    assert not (stores.root / "mlflow.db").exists()


@pytest.mark.slow
def test_warm_start_across_storages_end_to_end(
    stores: Stores, write_sweep: Callable[..., Path], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    first = write_sweep(trials=3)
    assert cli("run", first, *stores.args, "--quiet", "--jobs", "1").code == 0
    earlier = load_study("tiny", stores.storage)
    top = sorted(own_complete(earlier), key=lambda t: -(t.value or 0))[:2]
    # the second sweep: another name, its study in a journal file, a narrower learning rate
    second = write_sweep(
        "tiny2", trials=2, space={"learning_rate": {"low": 1.0e-3, "high": 5.0e-3, "log": True}}
    )
    journal = f"journal:///{tmp_path / 'second.log'}"
    args = ["--storage", journal, "--tracking-uri", stores.tracking_uri]
    ran = cli(
        "run", second, *args, "--quiet", "--jobs", "1",
        "--warm-start", "tiny:2", "--warm-start-storage", stores.storage,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    study = load_study("tiny2", journal)
    for new, old in zip(sorted(study.trials, key=lambda t: t.number), top, strict=True):
        assert new.params["learning_rate"] == pytest.approx(
            min(max(old.params["learning_rate"], 1e-3), 5e-3)
        )
        assert new.params["n_layers"] == old.params["n_layers"]
        assert new.params["activation"] == old.params["activation"]
    client = MlflowClient(stores.tracking_uri)
    exp = client.get_experiment_by_name("tiny2")
    parent = client.search_runs([exp.experiment_id], "tags.`nnsweep.role` = 'study'")[0]
    assert parent.data.tags[WARM_START_KEY].startswith(
        "warm start: the 2 best trials of study tiny enqueued (sqlite:///"
    )
    assert "what we learned from 2 COMPLETE trials of tiny2" in ran.out


def test_history_needs_the_same_objectives(
    stores: Stores, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """A single-objective study cannot be history for a multi-objective one (exit 2, nothing
    written); its best trials can be enqueued; a study with the same two objectives gives its
    trials' two values."""
    url = stores.storage
    _earlier(url, n=4)  # single-objective
    also = "objective: {also: params}\n"
    sweep = tmp_path / "new.yaml"
    sweep.write_text(_text("new") + also + "warm_start: {study: old, mode: history}\n")
    ran = cli("run", sweep, *stores.args, "--jobs", "1")
    assert ran.code == 2 and len(ran.err.strip().splitlines()) == 1
    assert "warm_start.mode: history needs a study with the same objectives" in ran.err
    assert "'old' is single-objective and objective.also is params" in ran.err
    assert "new" not in [s.study_name for s in optuna.get_all_study_summaries(url)]
    assert not (stores.root / "mlflow.db").exists()

    enqueue, dataset = prepare(parse_spec(_text("new") + also + "warm_start: {study: old}\n"))
    plan = plan_warm_start(enqueue, dataset, url, "new")
    assert plan is not None and len(plan.enqueue) == 4  # by the primary value, as ever

    multi, _ = prepare(parse_spec(_text("mo") + also))
    earlier = create_or_resume(multi, url, "mo", dataset=dataset)
    one = _earlier(f"sqlite:///{tmp_path / 'one.db'}", n=1).trials[0]  # params in the space
    earlier.add_trial(
        optuna.trial.create_trial(
            params=one.params,
            distributions=one.distributions,
            values=[0.8, 1234.0],
            user_attrs=one.user_attrs,
        )
    )
    mo2 = _text("mo2") + also + "warm_start: {study: mo, mode: history}\n"
    history, _ = prepare(parse_spec(mo2))
    plan = plan_warm_start(history, dataset, url, "mo2")
    assert plan is not None and [t.values for t in plan.history] == [[0.8, 1234.0]]
    back, _ = prepare(parse_spec(_text("so") + "warm_start: {study: mo, mode: history}\n"))
    with pytest.raises(SpecError, match="'mo' trades it against params and this sweep has no"):
        plan_warm_start(back, dataset, url, "so")


def test_start_with_is_enqueued_once_before_a_warm_start(tmp_path: Path) -> None:
    from nnsweep.spec.start import start_points
    from nnsweep.study.warm import start_new_study

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _earlier(url)
    text = _text("new") + "warm_start: {study: old, top: 2}\n"
    text += "start_with: [{n_layers: 2, units_0: 32, units_1: 16, learning_rate: 2.0e-4}]\n"
    spec, dataset = prepare(parse_spec(text))
    plan = plan_warm_start(spec, dataset, url, "new")
    study = create_or_resume(spec, url, "new", dataset=dataset)
    assert start_new_study(study, start_points(spec), plan)
    assert not start_new_study(study, start_points(spec), plan)  # a second worker: no-op
    first = _first_params(study, spec, 3)
    assert {k: first[0][k] for k in ("n_layers", "units_0", "units_1")} == {
        "n_layers": 2, "units_0": 32, "units_1": 16
    }  # fmt: skip
    assert first[0]["learning_rate"] == pytest.approx(2e-4)
    assert [p["learning_rate"] for p in first[1:]] == pytest.approx(
        [p["learning_rate"] for p in plan.enqueue]  # then the earlier study's best two
    )
    assert len(study.trials) == 3  # nothing enqueued twice
