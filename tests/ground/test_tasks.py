"""Tasks: inference from a target, what each task means for the model, objective and card."""

from __future__ import annotations

import numpy as np
import pytest

from nnsweep.errors import DataError, SpecError
from nnsweep.tasks import (
    BINARY,
    DIGITS,
    MULTICLASS,
    REGRESSION,
    Task,
    check_target,
    infer_task,
)

INFERENCE = [
    (np.array(["good", "bad", "good"]), BINARY),
    (np.array(["M", "R", "M", "R"]), BINARY),
    (np.array(["a", "b", "c"]), MULTICLASS),
    (np.array([0, 1, 1, 0]), BINARY),
    (np.array([0.0, 1.0, 1.0]), BINARY),  # whole floats are labels
    (np.array([True, False, True]), BINARY),
    (np.array([1, 2, 3, 5, 6, 7]), MULTICLASS),  # gapped integer labels
    (np.arange(20), MULTICLASS),  # 20 distinct whole numbers: still classes
    (np.arange(21), REGRESSION),  # 21: a quantity
    (np.array([1.5, 2.0, 2.5]), REGRESSION),  # any fraction: a quantity
    (np.linspace(100_000.0, 900_000.0, 500), REGRESSION),
]


@pytest.mark.parametrize(("y", "kind"), INFERENCE)
def test_infer_task(y: np.ndarray, kind: str) -> None:
    assert infer_task(y) == kind


@pytest.mark.parametrize("y", [np.array([3, 3, 3]), np.array(["x"]), np.array([], dtype=float)])
def test_a_target_with_fewer_than_two_values_is_refused(y: np.ndarray) -> None:
    with pytest.raises(DataError, match="at least two") as info:
        infer_task(y)
    assert "\n" not in str(info.value)


BAD_TARGETS = [
    (REGRESSION, np.array(["a", "b"]), "regression needs a numeric target"),
    (BINARY, np.array([1, 2, 3]), "binary needs exactly 2"),
    (MULTICLASS, np.array([1, 1]), "at least two"),
    (MULTICLASS, np.arange(1001), "too many classes"),
    ("ordinal", np.array([1, 2]), "not one of binary, multiclass, regression"),
]


@pytest.mark.parametrize(("kind", "y", "message"), BAD_TARGETS)
def test_check_target_refuses_a_task_the_target_cannot_have(
    kind: str, y: np.ndarray, message: str
) -> None:
    with pytest.raises(DataError, match=message) as info:
        check_target(kind, y)
    assert str(info.value).startswith("dataset.task: ") and "\n" not in str(info.value)


def test_check_target_accepts_what_fits() -> None:
    check_target(REGRESSION, np.array([1, 2, 3]))
    check_target(MULTICLASS, np.array(["a", "b"]))  # softmax over two classes is allowed
    check_target(BINARY, np.array([0.0, 1.0]))


@pytest.mark.parametrize(
    ("task", "units", "activation", "loss", "curves", "objectives"),
    [
        (
            Task(BINARY, 2),
            1,
            "sigmoid",
            "binary_crossentropy",
            ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"),
            {"val_accuracy": "maximize", "val_loss": "minimize", "val_auc": "maximize"},
        ),
        (
            Task(MULTICLASS, 7),
            7,
            "softmax",
            "sparse_categorical_crossentropy",
            ("loss", "accuracy", "val_loss", "val_accuracy"),
            {"val_accuracy": "maximize", "val_loss": "minimize"},
        ),
        (
            Task(REGRESSION),
            1,
            "linear",
            "mse",
            ("loss", "mae", "val_loss", "val_mae"),
            {"val_mae": "minimize", "val_loss": "minimize"},
        ),
    ],
)
def test_each_task_owns_its_output_loss_metrics_and_objectives(
    task: Task,
    units: int,
    activation: str,
    loss: str,
    curves: tuple[str, ...],
    objectives: dict[str, str],
) -> None:
    assert (task.output_units, task.output_activation, task.loss) == (units, activation, loss)
    assert task.curve_keys == curves
    assert task.objectives == objectives
    assert task.default_objective == next(iter(objectives))
    for metric, direction in objectives.items():
        assert task.direction(metric) == direction


def test_digits_are_a_ten_class_task_with_their_own_output_name() -> None:
    assert (DIGITS.kind, DIGITS.n_classes, DIGITS.output_name) == (MULTICLASS, 10, "digits")


@pytest.mark.parametrize(
    ("task", "metric", "direction", "message"),
    [
        (Task(MULTICLASS, 3), "val_auc", None, "not logged for a multiclass task; use one of "
         "val_accuracy, val_loss"),
        (Task(REGRESSION), "val_accuracy", None, "use one of val_mae, val_loss"),
        (Task(BINARY, 2), "val_loss", "maximize", "val_loss should be minimized"),
        (Task(REGRESSION), "val_mae", "maximize", "set direction: minimize"),
    ],
)  # fmt: skip
def test_objective_checks_name_the_field_and_the_allowed_values(
    task: Task, metric: str, direction: str | None, message: str
) -> None:
    with pytest.raises(SpecError, match=message) as info:
        task.check_objective(metric, direction)
    assert str(info.value).startswith("objective.") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kind", "n"), [(BINARY, 3), (MULTICLASS, 1), (MULTICLASS, None), (REGRESSION, 2), ("x", 2)]
)
def test_impossible_tasks_cannot_be_made(kind: str, n: int | None) -> None:
    with pytest.raises(ValueError):
        Task(kind, n)  # type: ignore[arg-type]


def test_decode_binary_multiclass_and_regression_outputs() -> None:
    pred, prob = Task(BINARY, 2).decode(np.array([[0.2], [0.5], [0.9]]))
    assert pred.tolist() == [0, 1, 1] and np.allclose(prob, [0.8, 0.5, 0.9])
    pred, prob = Task(MULTICLASS, 3).decode(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]))
    assert pred.tolist() == [1, 0] and np.allclose(prob, [0.7, 0.5])
    values, prob = Task(REGRESSION).decode(np.array([[1.5], [-2.0]]))
    assert values.tolist() == [1.5, -2.0] and prob is None


def test_labelled_outputs_and_the_dict_round_trip() -> None:
    task = Task(MULTICLASS, 3)
    labels, probs = task.labelled(np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]), ("a", "b", "c"))
    assert labels == ["c", "a"] and probs == pytest.approx([0.7, 0.6])
    assert Task(BINARY, 2).labelled(np.array([[0.9]]), (3, 5)) == ([5], [pytest.approx(0.9)])
    assert Task(REGRESSION).labelled(np.array([[2.5]])) == ([2.5], None)
    for t in (task, Task(BINARY, 2), Task(REGRESSION)):
        assert Task.from_dict(t.as_dict()) == t


@pytest.mark.parametrize(
    ("kind", "default", "allowed"),
    [
        ("binary", "val_accuracy", {"val_accuracy", "val_loss", "val_auc"}),
        ("multiclass", "val_accuracy", {"val_accuracy", "val_loss"}),
        ("regression", "val_mae", {"val_mae", "val_loss"}),
    ],
)
def test_objectives_by_kind_before_the_classes_are_known(
    kind: str, default: str, allowed: set[str]
) -> None:
    from nnsweep.errors import SpecError
    from nnsweep.tasks import (
        ALL_CURVE_KEYS,
        OBJECTIVE_DIRECTIONS,
        check_objective_for,
        default_objective_for,
    )

    assert default_objective_for(kind) == default
    for metric in OBJECTIVE_DIRECTIONS:
        if metric in allowed:
            check_objective_for(kind, metric, OBJECTIVE_DIRECTIONS[metric])
            assert metric in ALL_CURVE_KEYS
        else:
            with pytest.raises(SpecError, match=f"not logged for a {kind} task; use one of"):
                check_objective_for(kind, metric)
