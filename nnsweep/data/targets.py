"""A table's target learnt from its training rows only: task, classes, numeric rule, test labels.

Which rows are test is drawn first, as it always was (:func:`nnsweep.data.splits.split_rows`,
stratified on the column's own values with the fixed test seed), so every sweep, refit and
export of a file keeps the same test rows. Everything a model or a card then depends on is
decided from the remaining rows alone, the ones the sweep trains and validates on:

* the task kind (:func:`nnsweep.tasks.infer_task`), the class list and its order, and whether
  the target reads as numbers (the 95 % rule of :func:`nnsweep.data.splits.encode_target`);
* the test rows are then encoded with those classes. A test label that no training row holds
  is not mapped to any class: its rows are left out of the test split and counted in
  ``unseen``, which the export reports on the card (the model cannot answer them).

With the usual data the training rows hold every class (the stratified test draw leaves at
least one row of each class to training), so the result is the same as reading all rows; it
differs where the test rows would have decided, e.g. an integer column with 20 distinct
values in training and a 21st only in test, which is 20 classes, not a quantity.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.features import to_category, to_numeric
from nnsweep.data.splits import encode_target, label_value
from nnsweep.tasks import Task

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrainingTarget:
    """The target as the training rows define it.

    ``rest``: the training rows kept (indices into the rows given); ``y_rest`` their
    encoded target; ``test``: the test rows kept and ``y_test`` theirs; ``unseen``: test
    labels no training row holds, with their row counts (left out of ``test``).
    """

    rest: np.ndarray
    y_rest: np.ndarray
    task: Task
    class_names: tuple[Any, ...] | None
    test: np.ndarray
    y_test: np.ndarray
    unseen: dict[str, int]
    notes: tuple[str, ...]

    def full_y(self, n: int) -> np.ndarray:
        """The encoded target of all ``n`` rows, set at ``rest`` and ``test`` (0 elsewhere)."""
        dtype = np.int32 if self.task.is_classification else np.float32
        y = np.zeros(n, dtype=dtype)
        y[self.rest], y[self.test] = self.y_rest, self.y_test
        return y


def table_test_origin(file: str, share: float, task: Task) -> str:
    """Where a table's test rows come from, for the card."""
    how = "stratified by class" if task.is_classification else "at random"
    return (
        f"{share:.0%} of the rows of {file}, drawn {how} with a fixed seed (the same rows for "
        "every sweep and export): the same source as the training rows"
    )


def from_training_rows(
    values: pd.Series, rest: np.ndarray, test: np.ndarray, task: str | None, name: str
) -> TrainingTarget:
    """Encode target ``values`` from the training rows ``rest``; encode the ``test`` rows with
    the classes found there (see the module docstring).

    Raises:
        DataError: as :func:`~nnsweep.data.splits.encode_target`, about the training rows.
    """
    y_rest, kind, names, keep, notes = encode_target(values.iloc[rest], task, name)
    y_test, known, unseen = encode_test_target(values.iloc[test], kind, names)
    return TrainingTarget(
        rest=rest[keep],
        y_rest=y_rest,
        task=kind,
        class_names=names,
        test=test[known],
        y_test=y_test,
        unseen=unseen,
        notes=tuple(notes),
    )


def encode_test_target(
    values: pd.Series, task: Task, class_names: tuple[Any, ...] | None
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Test target values → (encoded y of the known rows, mask of those rows, unseen labels).

    Classification: a value is known when it is one of ``class_names`` (compared as JSON
    carries them: ``3`` and ``3.0`` are one class); regression: when it is a number. Unseen
    labels are counted by their text, most frequent first.
    """
    if not task.is_classification:
        numbers, _, _ = to_numeric(values, precise=True)
        known = np.isfinite(numbers)
        return numbers[known].astype(np.float32), known, _count(values[~known])
    names = class_names or ()
    numeric = bool(names) and all(
        isinstance(n, int | float) and not isinstance(n, bool) for n in names
    )
    if numeric:
        numbers, _, _ = to_numeric(values, precise=True)
        keys = [
            str(label_value(np.float64(v))) if np.isfinite(v) else str(raw)
            for v, raw in zip(numbers, values.tolist(), strict=True)
        ]
    else:
        keys = [str(v) for v in to_category(values)]
    index = {str(label_value(v)): i for i, v in enumerate(names)}
    known = np.array([k in index for k in keys], dtype=bool)
    y = np.array([index[k] for k in keys if k in index], dtype=np.int32)
    unseen = Counter(k for k in keys if k not in index)
    return y, known, dict(unseen.most_common())


def _count(values: pd.Series) -> dict[str, int]:
    return dict(Counter(str(v) for v in values.tolist()).most_common())
