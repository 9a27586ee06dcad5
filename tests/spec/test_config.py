"""Sweep-file validation: good files parse into typed specs; bad ones give one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nnsweep.errors import SpecError
from nnsweep.spec.config import SweepSpec, default_batch_size, load_spec, parse_spec
from nnsweep.spec.limits import DEFAULT_MAX_PARAMS
from nnsweep.spec.space import GRID_LIMIT, Choice, Fixed, FloatRange, IntRange, short_repr

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
    ("name: s\ndataset: {name: mnist, validation: 0.9}\ntrials: 3\n", r"dataset.validation"),
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
    # limits: sizes, numbers and YAML shapes that would cost time or memory later
    (MINIMAL + "space: {units: 70000}\n", r"space.units: the value must be <= 65,536"),
    (MINIMAL + "space: {n_layers: {low: 1, high: 1e10}}\n", r"space.n_layers: high must be <= 32"),
    (MINIMAL + "space: {epochs: [5, 20000]}\n", r"space.epochs: each choice must be <= 10,000"),
    (MINIMAL + "train: {batch_size: 2000000}\n", r"train.batch_size: .*less than or equal"),
    (MINIMAL + "seed: 4294967296\n", r"seed: .*less than or equal to 4294967295"),
    (MINIMAL + "space: {learning_rate: .nan}\n", r"learning_rate: the value must be a finite"),
    (MINIMAL + "space: {learning_rate: [0.1, 1e999]}\n", r"each choice must be a finite number"),
    (MINIMAL + "timeout: .inf\n", r"timeout: Input should be a finite number"),
    (MINIMAL + "trials: 4\n", r"line 4: key 'trials' appears twice"),
    (MINIMAL + 'description: "a\\e[2J"\n', r"line 4: control character U\+001B"),
    (MINIMAL + "seed: " + "9" * 31 + "\n", r"line 4: an integer of more than 30 digits"),
    (MINIMAL + "description: " + "[" * 30 + "]" * 30 + "\n", r"nesting deeper than 20"),
    (MINIMAL + "description: &a [x, *a]\n", r"alias \*a is used inside its own anchor"),
    (
        MINIMAL
        + "description: [&a [x, x, x, x, x, x, x, x, x, x], "
        + ", ".join(
            f"&{c} [" + ", ".join([f"*{p}"] * 10) + "]" for p, c in zip("abc", "bcd", strict=True)
        )
        + "]\n",
        r"more than 10,000 values \(aliases counted as what they stand for\)",
    ),
    (
        MINIMAL + "space: {n_layers: 8, units: 4096}\n",
        r"largest model in space \(8 hidden layers of 4,096 units, 784 inputs, 10 outputs\) "
        r"has 120,725,514 parameters, over limits.max_params = 50,000,000",
    ),
    (
        MINIMAL + "sampler: grid\nspace: {n_layers: 3, units: {low: 1, high: 100}}\n",
        r"sampler grid: the space has more than 100,000 grid points",
    ),
    (
        MINIMAL + "sampler: grid\nspace: {learning_rate: {low: 1.0e-9, high: 1, step: 1.0e-12}}\n",
        r"more than 100,000 grid points \(space.learning_rate alone has 999,999,999,001 values",
    ),
    (MINIMAL + "description: " + "x" * 10_001 + "\n", r"description: String should have at most"),
    (MINIMAL + "limits: {max_params: 0}\n", r"limits.max_params"),
    ("x" * 300_000, r"at most 262,144 bytes"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_files_give_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(text, "sweeps/x.yaml")
    line = str(info.value)
    assert line.startswith("sweeps/x.yaml: ")
    assert "\n" not in line
    assert len(line) < 400  # values in messages are cut


def test_a_file_without_a_budget_gets_the_default_one_at_preflight() -> None:
    """No trials and no timeout is not an error: zero-config's default budget applies once the
    data is known (nnsweep.spec.defaults.apply_defaults), with a note; a budget given in the
    file or on the command line (--trials) is kept."""
    from nnsweep.spec.defaults import DEFAULT_TRIALS, apply_defaults

    text = "name: s\ndataset: mnist_5k\nspace: {units: [32, 64]}\n"
    spec = parse_spec(text)
    assert spec.trials is None and spec.timeout is None
    filled, notes = apply_defaults(spec, "multiclass", 3_600, 784, table=False)
    assert (filled.trials, filled.timeout) == (DEFAULT_TRIALS, 125.0) == (20, 125.0)
    assert notes == [
        "budget: 20 trials, no new trial after 125 s (set trials/timeout, or --trials/--timeout, "
        "to change it)"
    ]
    large, _ = apply_defaults(spec, "multiclass", 10_001, 784, table=False)
    assert (large.trials, large.timeout) == (20, 600.0)
    for given in (parse_spec(text + "trials: 6\n"), spec.with_overrides(trials=6)):
        kept, notes = apply_defaults(given, "multiclass", 3_600, 784, table=False)
        assert (kept.trials, kept.timeout, notes) == (6, None, [])


def test_long_values_are_cut_in_messages() -> None:
    assert len(short_repr("x" * 1000)) <= 80 and short_repr("abc") == "'abc'"
    assert short_repr(list(range(10**6))).startswith("[0, 1, 2")
    assert len(short_repr([[[[[1]]]]] * 10**5)) <= 80
    assert "\n" not in short_repr("a\nb") and short_repr("a\nb") == "'a\\nb'"
    assert short_repr(10**5000).startswith("<an int of about 5000 digits")
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + "space: {activation: " + "q" * 5000 + "}\n", "x.yaml")
    line = str(info.value)
    assert "'" + "q" * 78 + "… is not one of" in line and "q" * 79 not in line


def test_ranges_are_sized_without_listing() -> None:
    big = IntRange(1, 10**12, 3)
    assert big.size() == (10**12 - 1) // 3 + 1 and big.largest() == 1 + (big.size() - 1) * 3
    with pytest.raises(ValueError, match="too many to list"):
        big.grid_values()
    assert IntRange(2, 9, 3).grid_values() == [2, 5, 8] and IntRange(2, 9, 3).largest() == 8
    assert FloatRange(0.0, 1.0).size() is None and FloatRange(0.0, 1.0).largest() == 1.0
    assert FloatRange(0.1, 0.35, 0.1).size() == 3 and FloatRange(0.1, 0.35, 0.1).largest() == 0.3
    assert FloatRange(0.0, 1e300, 1e-300).size() == 10**18 + 1  # overflow counted, not raised
    assert Choice((3, 9, 1)).largest() == 9 and Fixed(4).size() == 1
    assert GRID_LIMIT == 100_000


def test_largest_model_is_counted_from_the_space() -> None:
    spec = parse_spec(MINIMAL + "space: {n_layers: [1, 2], units: {low: 8, high: 64, log: true}}")
    # 784 -> 64 -> 64 -> 10, weights and biases
    assert spec.max_param_count(784, 10) == 785 * 64 + 65 * 64 + 65 * 10 == 55_050
    assert spec.max_param_count(3, 1) == 4 * 64 + 65 * 64 + 65 * 1
    spec.check_model_size(784, 10)
    with pytest.raises(SpecError, match=r"784,000 inputs, 10 outputs\) has 50,\d{3},\d{3} param"):
        spec.check_model_size(784_000, 10)
    assert spec.limits.max_params == DEFAULT_MAX_PARAMS


def test_limits_max_params_can_be_raised() -> None:
    text = MINIMAL + "space: {n_layers: 8, units: 4096}\n"
    spec = parse_spec(text + "limits: {max_params: 200000000}\n")
    assert spec.max_param_count(784, 10) == 120_725_514
    assert spec.with_overrides(seed=1).limits.max_params == 200_000_000


def test_aliases_and_merge_keys_within_bounds_still_work() -> None:
    spec = parse_spec(
        "name: s\ndataset: mnist_5k\ntrials: &n 3\nseed: *n\n"
        "train: &t {epochs: 4}\nspace: {epochs: *n, batch_size: [16, 32]}\n"
        "pruner: {<<: {name: hyperband, min_resource: 2}, reduction_factor: 4}\n"
    )
    assert spec.seed == 3 and spec.train.epochs == 4 and spec.max_epochs == 3
    assert spec.pruner.name == "hyperband" and spec.pruner.min_resource == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name: s\ndescription: caf\xe9\n", r"not UTF-8 text \(byte 0xe9 at offset 24\)"),
        (b"name: s\x00\x01\x02", r"a binary file \(it holds NUL bytes\)"),
        (b"#" * (256 * 1024 + 1), r"a sweep file is at most 262,144 bytes, but this one is larger"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=message):
        load_spec(path)


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


@pytest.mark.parametrize(
    ("n_train", "expected"),
    [
        (3, 8),
        (64, 8),
        (96, 8),
        (200, 16),
        (365, 32),
        (700, 64),
        (1023, 64),
        (1024, 128),
        (54_000, 128),
    ],
)
def test_the_default_batch_size_gives_small_splits_eight_steps_an_epoch(n_train, expected):
    size = default_batch_size(n_train)
    assert size == expected
    assert size == 8 or n_train // size >= 8  # at least 8 full steps unless at the floor


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", 16),  # nothing said: the default follows the training split
        ("train: {batch_size: 128}\n", 128),  # said in train: kept
        ("space: {batch_size: [64, 128]}\n", None),  # sampled: the space decides
    ],
)
def test_a_batch_size_the_file_names_is_kept(extra, expected):
    spec = parse_spec(MINIMAL + extra).for_train_size(200)
    dim = spec.batch_size_dim
    if expected is None:
        assert isinstance(dim, Choice) and dim.choices == (64, 128)
    else:
        assert dim == Fixed(expected)
    # CLI overrides re-validate the spec: an unset batch size stays unset (and so adaptable)
    assert parse_spec(MINIMAL).with_overrides(trials=5).train.batch_size is None
