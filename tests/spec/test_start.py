"""``start_with``: configurations a new study trains first. Bad entries are refused with one
line naming the entry and key; the zero-config default's plain MLPs lie inside every default
space; a new study enqueues them once (real Optuna storage), a resumed one never again."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnsweep.errors import SpecError
from nnsweep.spec.config import parse_spec
from nnsweep.spec.defaults import apply_defaults, default_space, default_start
from nnsweep.spec.space import Choice, Fixed, FloatRange, IntRange
from nnsweep.spec.start import contains, start_points, start_with_problem

SWEEP = """name: s
dataset: mnist_5k
trials: 4
space:
  n_layers: {low: 1, high: 2}
  units: [16, 32]
  activation: [relu, tanh]
  learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}
  dropout: {low: 0.0, high: 0.5, step: 0.1}
"""


def _spec(start: str):  # noqa: ANN202
    return parse_spec(SWEEP + start)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ("start_with: [{learning_rate: 0.5}]", "start_with[0].learning_rate: 0.5 is not in"),
        ("start_with: [{unitz: 16}]", "start_with[0].'unitz': not a dimension of this sweep"),
        ("start_with: [{units: 16}]", "start_with[0].units: give each layer's width as units_0"),
        ("start_with: [{n_layers: 1, units_1: 16}]", "has n_layers 1, so it has no layer 1"),
        ("start_with: [{units_2: 16}]", "start_with[0].'units_2': the space has at most 2 layers"),
        ("start_with: [{units_1000: 16}]", "start_with[0].'units_1000': the space has at most 2"),
        ("start_with: [{units_0: 20}]", "start_with[0].units_0: 20 is not in the space (one of"),
        ("start_with: [{activation: true}]", "start_with[0].activation: True is not in"),
        ("start_with: [{n_layers: 2.0}]", "start_with[0].n_layers: 2.0 is not in"),
        ("start_with: [{dropout: 0.25}]", "start_with[0].dropout: 0.25 is not in the space"),
        ("start_with: [{optimizer: sgd}]", "start_with[0].optimizer: 'sgd' is not in"),
        ("start_with: [{n_layers: 1}, {}]", "start_with[1]: an empty configuration"),
        ("start_with: []", "start_with"),
        ("start_with: 3", "start_with"),
        ("start_with: [{lr: [1, 2]}]", "start_with"),
    ],
)
def test_bad_start_with_is_one_line_naming_the_entry(start: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        _spec(start)
    text = str(err.value)
    assert message in text and "\n" not in text, text


def test_good_start_with_keeps_only_the_searched_dimensions() -> None:
    spec = _spec(
        "start_with:\n"
        "  - {n_layers: 2, units_0: 32, units_1: 16, learning_rate: 0.003, dropout: 0.2}\n"
        "  - {activation: tanh, optimizer: adam}\n"
    )
    assert start_with_problem(spec) is None
    # optimizer is fixed (adam, the default): never asked of the sampler, so not enqueued
    assert start_points(spec) == [
        {"n_layers": 2, "units_0": 32, "units_1": 16, "learning_rate": 0.003, "dropout": 0.2},
        {"activation": "tanh"},
    ]


@pytest.mark.parametrize(
    ("dim", "value", "inside"),
    [
        (IntRange(1, 9, step=2), 5, True),
        (IntRange(1, 9, step=2), 4, False),
        (IntRange(1, 9), True, False),
        (FloatRange(0.0, 1.0), 1, True),
        (FloatRange(0.0, 1.0), float("nan"), False),
        (FloatRange(0.0, 1.0, step=0.25), 0.5, True),
        (FloatRange(0.0, 1.0, step=0.25), 0.6, False),
        (Choice(["a", "b"]), "b", True),
        (Choice([1, 2]), True, False),
        (Fixed(0.5), 0.5, True),
        (Fixed("adam"), "sgd", False),
    ],
)
def test_contains_takes_values_as_they_are(dim, value, inside) -> None:  # noqa: ANN001
    assert contains(dim, value) is inside


@pytest.mark.parametrize("table", [True, False])
@pytest.mark.parametrize("rows", [20, 113, 999, 1_000, 4_999, 19_999, 20_000, 500_000])
@pytest.mark.parametrize("inputs", [1, 4, 13, 100, 784, 5_000])
def test_the_default_start_lies_inside_every_default_space(
    rows: int, inputs: int, table: bool
) -> None:
    space = default_space("multiclass", rows, inputs, table=table)
    points = default_start(space)
    assert [p["n_layers"] for p in points] == [2, 1]
    base = parse_spec(f"name: s\ndataset: mnist_5k\nspace: {space!r}\n".replace("'", '"'))
    spec = base.model_copy(update={"start_with": points})
    assert start_with_problem(spec) is None
    assert all(set(p) <= {*spec.grid_dims(), "units_0", "units_1"} for p in points)


def test_zero_config_adds_the_start_and_a_file_s_own_start_wins(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text("a,b,y\n1,2,0\n3,4,1\n", encoding="utf-8")
    bare = parse_spec(f"name: t\ndataset: {{path: {data}, target: y}}\n")
    spec, notes = apply_defaults(bare, "binary", 500, 2, table=True)
    assert spec.start_with == default_start(default_space("binary", 500, 2, table=True))
    assert "first the plain MLPs 2x64 and 1x64" in notes[0]
    own = parse_spec(
        f"name: t\ndataset: {{path: {data}, target: y}}\nstart_with: [{{learning_rate: 0.002}}]\n"
    )
    spec, notes = apply_defaults(own, "binary", 500, 2, table=True)
    assert spec.start_with == [{"learning_rate": 0.002}] and "plain MLPs" not in notes[0]
    # checked against the default space once it is chosen
    outside = parse_spec(
        f"name: t\ndataset: {{path: {data}, target: y}}\nstart_with: [{{learning_rate: 0.5}}]\n"
    )
    with pytest.raises(SpecError, match=r"start_with\[0\].learning_rate: 0.5 is not in"):
        apply_defaults(outside, "binary", 500, 2, table=True)
