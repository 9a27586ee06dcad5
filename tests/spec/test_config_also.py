"""``objective.also``: which sweep files a multi-objective study accepts, and the one-line
refusals (exit 2, nothing written) for the combinations that cannot work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nnsweep.errors import SpecError
from nnsweep.spec.config import parse_spec

BASE = "name: s\ndataset: mnist_5k\ntrials: 3\n"


@pytest.mark.parametrize(
    ("extra", "also", "sampler"),
    [
        ("objective: val_accuracy\n", None, "tpe"),  # the shorthand still works
        ("objective: {metric: val_accuracy, also: params}\n", "params", "tpe"),
        ("objective: {also: latency}\n", "latency", "tpe"),  # metric from the task
        ("objective: {also: params}\nsampler: nsga2\n", "params", "nsga2"),
        ("objective: {also: params}\nsampler: random\npruner: none\n", "params", "random"),
        ("objective: {also: params}\nsampler: qmc\n", "params", "qmc"),
        ("objective: {also: params}\nstop: never\n", "params", "tpe"),
        (
            "objective: {also: params}\npruner: {name: median, n_startup_trials: 1}\n",
            "params",
            "tpe",
        ),
        ("sampler: nsga2\n", None, "nsga2"),  # NSGA-II on one objective is allowed too
    ],
)
def test_accepted(extra: str, also: str | None, sampler: str) -> None:
    spec = parse_spec(BASE + extra)
    assert spec.objective.also == also and spec.sampler.name == sampler
    assert spec.objective.metric == "val_accuracy"  # the task's default filled in


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("objective: {also: flops}\n", "objective.also: 'flops' is not one of params, latency"),
        ("objective: {also: params}\nsampler: cmaes\n", "sampler: cmaes optimises one objective"),
        ("objective: {also: latency}\npruner: hyperband\n", "pruner: hyperband cannot judge"),
        ("objective: {also: params}\npruner: successive_halving\n", "pruner: successive_halving"),
        ("objective: {also: params}\nstop: converged\n", "stop: converged watches one objective"),
    ],
)
def test_refused_with_the_field_and_the_fix(extra: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(BASE + extra, "x.yaml")
    text = str(err.value)
    assert text.startswith("x.yaml: ") and message in text and "\n" not in text
    if "not one of" not in message:
        assert "use " in text or "drop " in text  # names the fix


def test_also_is_a_comparable_setting() -> None:
    from nnsweep.study.comparable import comparable_settings, differences

    one = comparable_settings(parse_spec(BASE))
    two = comparable_settings(parse_spec(BASE + "objective: {also: params}\n"))
    assert one["objective.also"] is None and two["objective.also"] == "params"
    assert differences(one, two) == {"objective.also": (None, "params")}


def test_cli_refuses_a_bad_combination_and_writes_nothing(
    write_sweep: Callable[..., Path], stores: Any, cli: Callable[..., Any]
) -> None:
    sweep = write_sweep(objective={"metric": "val_accuracy", "also": "params"}, sampler="cmaes")
    result = cli("run", sweep, *stores.args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "sampler: cmaes optimises one objective" in lines[0]
    assert not (stores.root / "optuna.db").exists()
    assert not (stores.root / "mlflow.db").exists()
