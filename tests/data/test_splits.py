"""How ``validation: auto`` and ``{folds: K}`` resolve for the training part's labels: 5 folds
on a small table, fewer when a class is rare (never fewer than 3), else the 0.2 holdout; an
impossible K is refused with the largest K that works."""

from __future__ import annotations

import numpy as np
import pytest

from nnsweep.data.splits import resolve_folds
from nnsweep.errors import DataError
from nnsweep.spec.dataset import AUTO, Folds
from nnsweep.tasks import Task


def _labels(*counts: int) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((50, 50), 5),  # a small table: 5 folds
        ((40, 5), 5),
        ((40, 4), 4),  # a rare class: as many folds as it has rows
        ((40, 3), 3),
        ((40, 2), None),  # fewer than 3: the holdout
        ((1_200, 900), None),  # 2,000 rows and more: the holdout
        ((6, 3), None),  # under 10 rows: the holdout
    ],
)
def test_auto_takes_fewer_folds_for_a_rare_class_and_the_holdout_below_three(
    counts: tuple[int, ...], expected: int | None
) -> None:
    y = _labels(*counts)
    assert resolve_folds(AUTO, y, Task("multiclass", n_classes=len(counts))) == expected


def test_auto_on_a_small_regression_table_takes_five_folds() -> None:
    y = np.linspace(0.0, 1.0, 30)
    assert resolve_folds(AUTO, y, Task("regression")) == 5
    assert resolve_folds(0.2, y, Task("regression")) is None


def test_folds_a_class_cannot_fill_are_refused_with_the_largest_k_that_works() -> None:
    y = _labels(40, 3)
    with pytest.raises(DataError, match=r"class 1 has 3; use fewer folds \(\{folds: 3\}\)"):
        resolve_folds(Folds(folds=5), y, Task("binary", n_classes=2))
