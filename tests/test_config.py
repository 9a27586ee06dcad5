"""Sweep-file validation: good files parse into typed specs; bad ones give one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nnsweep.config import SweepSpec, load_spec, parse_spec
from nnsweep.errors import SpecError
from nnsweep.space import Choice, FloatRange, IntRange

MINIMAL = "name: s\ndataset: mnist_5k\ntrials: 3\n"


def test_minimal_file_gets_defaults() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.dataset.name == "mnist_5k" and spec.dataset.validation == 0.1
    assert spec.objective.metric == "val_accuracy" and spec.objective.direction == "maximize"
    assert spec.sampler.name == "tpe" and spec.pruner.name == "median"
    assert spec.epochs_dim.grid_values() == [10]
    assert spec.batch_size_dim.grid_values() == [128]


@pytest.mark.parametrize("path", sorted(Path("sweeps").glob("*.yaml")))
def test_shipped_sweeps_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem


def test_full_space_parses_into_dimensions() -> None:
    spec = parse_spec(
        MINIMAL
        + """
space:
  n_layers: {low: 1, high: 3}
  units: {low: 16, high: 512, log: true}
  activation: [relu, tanh]
  learning_rate: {low: 1e-4, high: 1e-1, log: true}
  batch_size: [32, 64]
  dropout: {low: 0.0, high: 0.5}
  epochs: {low: 2, high: 6, step: 2}
objective: {metric: val_loss}
"""
    )
    sp = spec.space
    assert sp.n_layers == IntRange(1, 3)
    assert sp.units == IntRange(16, 512, 1, True)
    assert sp.activation == Choice(("relu", "tanh"))
    assert sp.learning_rate == FloatRange(1e-4, 1e-1, None, True)  # "1e-4" (a YAML string) parsed
    assert spec.batch_size_dim == Choice((32, 64))
    assert spec.max_epochs == 6
    assert spec.objective.direction == "minimize"


def test_round_trip_through_json_dump() -> None:
    spec = parse_spec(MINIMAL + "space: {units: {low: 8, high: 64, log: true}, activation: [relu]}")
    again = SweepSpec.model_validate(spec.model_dump(mode="json"))
    assert again == spec


def test_overrides_are_validated() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.with_overrides(trials=7, seed=3).trials == 7
    with pytest.raises(SpecError, match="trials"):
        spec.with_overrides(trials=0)


BAD = [
    ("name: s\ntrials: 2\n", r"dataset: required field is missing"),
    (MINIMAL + "bogus: 1\n", r"unknown key 'bogus'; allowed keys: name, dataset"),
    (
        MINIMAL + "space: {activation: relux}\n",
        r"space.activation: 'relux' is not one of relu, elu",
    ),
    (MINIMAL + "space: {activation: []}\n", r"space.activation: choices must not be empty"),
    (MINIMAL + "space: {optimizer: [adam, lion]}\n", r"space.optimizer: 'lion' is not one of sgd"),
    (MINIMAL + "space: {n_layers: {low: 3, high: 1}}\n", r"space.n_layers: low <= high must hold"),
    (
        MINIMAL + "space: {learning_rate: {low: 0, high: 0.1, log: true}}\n",
        r"space.learning_rate: a log range needs low > 0",
    ),
    (MINIMAL + "space: {units: {low: 0, high: 8}}\n", r"space.units: low must be >= 1"),
    (MINIMAL + "space: {units: {low: 8}}\n", r"space.units: a range needs both low and high"),
    (MINIMAL + "space: {units: {low: 8, high: 9, lo: 1}}\n", r"unknown key 'lo' in a range"),
    (MINIMAL + "space: {units: many}\n", r"space.units: the value must be a whole number"),
    (MINIMAL + "space: {dropout: 1.5}\n", r"space.dropout: the value must be < 1.0"),
    (MINIMAL + "space: {batch_size: [32, 32]}\n", r"space.batch_size: choices must be distinct"),
    (MINIMAL + "sampler: annealing\n", r"sampler.name: 'annealing' is not one of tpe, random"),
    (MINIMAL + "pruner: wild\n", r"pruner.name: 'wild' is not one of median"),
    ("name: s\ndataset: cifar10\ntrials: 2\n", r"dataset.name: 'cifar10' is not one of mnist"),
    (MINIMAL + "dataset: {name: mnist, validation: 0.9}\n", r"dataset.validation"),
    ("name: s\ndataset: mnist_5k\n", r"give trials: N and/or timeout"),
    (MINIMAL + "train: {epochs: 0}\n", r"train.epochs"),
    (MINIMAL + "trials_count: pruned\n", r"trials_count: 'pruned' is not one of complete, all"),
    (MINIMAL + "train: {epochs: ten}\n", r"train.epochs: .*got 'ten'"),
    (MINIMAL + "objective: {metric: val_loss, direction: maximize}\n", r"should be minimized"),
    (
        MINIMAL + "sampler: grid\nspace: {learning_rate: {low: 0.001, high: 0.1}}\n",
        r"grid needs a finite space, but space.learning_rate",
    ),
    ("name: 'bad name!'\ndataset: mnist_5k\ntrials: 1\n", r"not a usable study name"),
    ("- just\n- a list\n", r"must be a YAML mapping"),
    ("name: [unclosed\n", r"line \d+: invalid YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_files_give_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(text, "sweeps/x.yaml")
    line = str(info.value)
    assert line.startswith("sweeps/x.yaml: ")
    assert "\n" not in line


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="sweep file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_grid_accepts_finite_space() -> None:
    text = (
        MINIMAL
        + "sampler: grid\n"
        + yaml.safe_dump(
            {
                "space": {
                    "n_layers": [1, 2],
                    "learning_rate": {"low": 0.01, "high": 0.03, "step": 0.01},
                }
            }
        )
    )
    spec = parse_spec(text)
    assert spec.space.learning_rate.grid_values() == [0.01, 0.02, 0.03]
