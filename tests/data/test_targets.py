"""The target is learnt from the training rows only: the task kind, the class list and its
order, and the numeric rule ignore the test rows; a test label no training row holds is
counted as unseen and left out, never mapped to a class. Checked on the encoder itself and on
real files: a drawn test split, a ``dataset.test_path`` table and an ``.npz`` with its own
test arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnsweep.data.splits import encode_target, random_split
from nnsweep.data.tables import DEFAULT_TEST, load_table
from nnsweep.data.targets import encode_test_target, from_training_rows
from nnsweep.data.testfile import with_test_file
from nnsweep.tasks import MULTICLASS, REGRESSION

REST = np.arange(30)
TEST = np.arange(30, 36)


def test_a_class_only_in_the_test_rows_is_unseen_not_a_fourth_class() -> None:
    values = pd.Series([i % 3 for i in range(30)] + [0, 3, 1, 3, 2, 1])
    _, all_rows, _, _, _ = encode_target(values, None, "y")
    assert all_rows.n_classes == 4  # what reading every row would have made of it
    t = from_training_rows(values, REST, TEST, None, "y")
    assert (t.task.kind, t.task.n_classes, t.class_names) == (MULTICLASS, 3, (0, 1, 2))
    assert t.unseen == {"3": 2}
    assert t.test.tolist() == [30, 32, 34, 35]  # the two rows holding 3 are left out
    assert t.y_test.tolist() == [0, 1, 2, 1]
    assert t.rest.tolist() == REST.tolist() and t.y_rest.tolist() == values[:30].tolist()


def test_the_numeric_rule_is_decided_on_the_training_rows() -> None:
    """30 numbers in training, 10 text cells in test: over every row that is 25 % text (read
    as class labels); over the training rows it is a quantity, and the text is unseen."""
    numbers = [round(0.37 * i + 1.1, 2) for i in range(30)]
    values = pd.Series([str(v) for v in numbers] + ["unknown"] * 9 + ["4.2"], dtype=object)
    rest, test = np.arange(30), np.arange(30, 40)
    _, all_rows, _, _, _ = encode_target(values, None, "y")
    assert all_rows.is_classification
    t = from_training_rows(values, rest, test, None, "y")
    assert t.task.kind == REGRESSION and t.class_names is None
    assert t.unseen == {"unknown": 9}
    assert t.test.tolist() == [39] and t.y_test.tolist() == pytest.approx([4.2])
    assert t.y_rest.tolist() == pytest.approx(numbers)


def test_a_text_cell_among_numeric_test_rows_does_not_change_the_rule() -> None:
    values = pd.Series([float(i % 3) for i in range(30)] + [1.0, "n/a", 2.0, 0.0, 1.0, 2.0])
    t = from_training_rows(values, REST, TEST, None, "y")
    assert (t.task.kind, t.class_names) == (MULTICLASS, (0, 1, 2))
    assert t.unseen == {"n/a": 1}
    assert t.y_test.tolist() == [1, 2, 0, 1, 2]


@pytest.mark.parametrize(
    ("train", "test", "names", "y_test", "unseen"),
    [
        # "a" sorts first but no training row holds it: it is no class, and takes no index
        (["c", "b"], ["a", "b", "c", "a"], ("b", "c"), [0, 1], {"a": 2}),
        # numbers: 5.0 and "9" are the classes 5 and 9 (as JSON carries them); 1 is unseen
        ([9, 2, 5], [1, 5.0, "9", 2], (2, 5, 9), [1, 2, 0], {"1": 1}),
    ],
)
def test_class_order_comes_from_the_training_rows(
    train: list[object], test: list[object], names: tuple[object, ...], y_test: list[int],
    unseen: dict[str, int],
) -> None:  # fmt: skip
    values = pd.Series(train * 10 + test, dtype=object)
    rest, test_idx = np.arange(len(train) * 10), np.arange(len(train) * 10, len(values))
    t = from_training_rows(values, rest, test_idx, None, "y")
    assert t.class_names == names
    assert t.y_test.tolist() == y_test and t.unseen == unseen
    # the same classes when the test rows come on their own (a test file)
    y, known, found = encode_test_target(pd.Series(test, dtype=object), t.task, t.class_names)
    assert y.tolist() == y_test and int(known.sum()) == len(y_test) and found == unseen


def test_a_drawn_test_split_whose_only_21st_value_is_in_test(tmp_path: Path) -> None:
    """Whole numbers with 21 distinct values over every row would be a quantity; the training
    rows hold 20, so it is 20 classes, and the test row holding the 21st is unseen."""
    n = 200
    rest, test = random_split(n, DEFAULT_TEST, 0)  # the rows a regression draw sends to test
    y = np.zeros(n, dtype=int)
    y[rest] = np.arange(len(rest)) % 20
    y[test] = np.arange(len(test)) % 20
    y[test[3]] = 20
    path = tmp_path / "counts.csv"
    pd.DataFrame({"x": np.arange(n) * 0.5, "y": y}).to_csv(path, index=False)
    _, all_rows, _, _, _ = encode_target(pd.Series(y), None, "y")
    assert all_rows.kind == REGRESSION  # the test rows would have decided it
    splits = load_table(path, target="y", validation=0.2)
    assert (splits.task.kind, splits.task.n_classes) == (MULTICLASS, 20)
    assert splits.class_names == tuple(range(20))
    assert splits.unseen_test == {"20": 1}
    assert len(splits.y_test) == len(test) - 1 and set(splits.y_test.tolist()) <= set(range(20))
    assert len(splits.y_train) + len(splits.y_val) == len(rest)


def test_a_test_file_with_a_label_the_training_file_lacks(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    rng = np.random.default_rng(0)
    rows = {"x": rng.normal(size=60), "y": ["lo", "mid", "hi"] * 20}
    pd.DataFrame(rows).to_csv(train, index=False)
    pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4], "y": ["mid", "top", "lo", "top"]}).to_csv(
        test, index=False
    )
    splits = with_test_file(load_table(train, target="y", draw_test=False), test)
    assert splits.class_names == ("hi", "lo", "mid") and splits.task.n_classes == 3
    assert splits.unseen_test == {"top": 2}
    assert splits.y_test.tolist() == [2, 1]
    assert len(splits.x_test["numeric"]) == 2


def test_a_numeric_training_file_and_a_text_cell_in_its_test_file(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    pd.DataFrame({"x": x, "y": 2.5 * x + 0.1}).to_csv(train, index=False)
    pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": ["0.1", "see notes", "5.1"]}).to_csv(test, index=False)
    splits = with_test_file(load_table(train, target="y", draw_test=False), test)
    assert splits.task.kind == REGRESSION
    assert splits.unseen_test == {"see notes": 1}
    assert splits.y_test.tolist() == pytest.approx([0.1, 5.1])


def test_an_npz_whose_test_arrays_hold_a_fourth_class(tmp_path: Path) -> None:
    path = tmp_path / "table.npz"
    rng = np.random.default_rng(0)
    y_test = np.array([0, 3, 1, 2, 3, 3])
    np.savez(
        path,
        x_train=rng.normal(size=(60, 4)),
        y_train=np.arange(60) % 3,
        x_test=rng.normal(size=(6, 4)),
        y_test=y_test,
    )
    splits = load_table(path, target=None, validation=0.2)
    assert (splits.task.kind, splits.task.n_classes) == (MULTICLASS, 3)
    assert splits.class_names == (0, 1, 2)
    assert splits.unseen_test == {"3": 3}
    assert splits.y_test.tolist() == [0, 1, 2]
