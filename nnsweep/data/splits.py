"""Targets and splits: labels to class indices and back, seeded (stratified) split rows.

Classes are the target's distinct values in sorted order (numbers numerically, text
alphabetically): ``1,2,3,5,6,7`` become indices 0-5 and ``"bad"/"good"`` 0/1, ``good`` being
the positive class of a binary task. Rows whose target is missing are not kept.

The test split is drawn with the fixed seed :data:`TEST_SEED`, whatever the sweep's seed, so
every sweep and every refit sees the same test rows; validation rows are drawn from the rest
with the sweep's seed. Classification splits are stratified (each class keeps its share).

With cross-validation (``dataset.validation: {folds: K}``, or ``auto`` on a small table) no
validation split is drawn: every row but the test split trains and is scored, fold by fold
(:func:`holdout_or_folds`, :mod:`nnsweep.data.folds`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from nnsweep.data.features import MISSING, to_category, to_numeric
from nnsweep.errors import DataError
from nnsweep.spec.dataset import (
    AUTO,
    AUTO_CV_BELOW,
    AUTO_FOLDS,
    AUTO_HOLDOUT,
    AUTO_MIN_FOLDS,
    Folds,
    Validation,
)
from nnsweep.tasks import REGRESSION, Task, TaskKind, check_target, infer_task

if TYPE_CHECKING:
    import pandas as pd

TEST_SEED = 0
NUMERIC_SHARE = 0.95  # numbers in this share of the rows make a numeric column


# -- target ---------------------------------------------------------------------------------
def encode_target(
    values: pd.Series, task: str | None, name: str
) -> tuple[np.ndarray, Task, tuple[Any, ...] | None, np.ndarray, list[str]]:
    """Target values → (encoded y, task, class names, mask of the rows kept, notes).

    Rows whose target is missing are not kept. A target whose values are numbers in at least
    95 % of the rows, and a quantity (regression, given or inferred from the numbers), also
    drops the rows holding text; otherwise such a column is read as class labels.
    Classification ``y`` holds int32 class indices into the class names; regression ``y``
    float32 values.

    Raises:
        DataError: no target value, one distinct value, or a task the target cannot have.
    """
    import pandas as pd

    field = f"dataset.target {name!r}"
    numbers, junk, example = to_numeric(values, precise=True)
    is_bool = pd.api.types.is_bool_dtype(values.dtype)
    present = int(np.isfinite(numbers).sum())
    numeric = not is_bool and present > 0 and junk <= (1 - NUMERIC_SHARE) * (present + junk)
    if numeric and junk and task != REGRESSION:
        try:  # a few text cells in a column of classes are classes too
            numeric = infer_task(numbers[np.isfinite(numbers)], field) == REGRESSION
        except DataError:
            numeric = False
    if task == REGRESSION and not numeric:
        raise DataError(
            f"{field}: regression needs numbers, but {junk or len(values)} row(s) hold text "
            f"such as {example or str(values.iloc[0])!r}; fix the file or use task: binary or "
            "multiclass"
        )
    notes = []
    if numeric:
        keep = np.isfinite(numbers)
        kept: np.ndarray = numbers[keep]
        if junk:
            notes.append(
                f"dropped {junk} row(s) whose target {name!r} is text, not a number "
                f"(e.g. {example!r})"
            )
    else:
        labels = to_category(values)
        keep = labels != MISSING
        kept = labels[keep].astype(str)
    if not keep.any():
        raise DataError(f"{field}: every row's target is missing; pick another column")
    n_missing = int((~keep).sum()) - (junk if numeric else 0)
    if n_missing:
        notes.append(f"dropped {n_missing} row(s) whose target {name!r} is missing")
    if task is None:
        kind = infer_task(kept, field)
    else:
        check_target(task, kept)
        kind = cast(TaskKind, task)
    if kind == REGRESSION:
        return kept.astype(np.float32), Task(REGRESSION), None, keep, notes
    check_target(kind, kept)
    classes, y = np.unique(kept, return_inverse=True)
    names = tuple(label_value(v) for v in classes)
    return y.astype(np.int32), Task(kind, len(classes)), names, keep, notes


def label_value(value: Any) -> Any:
    """A class name as JSON carries it: whole numbers as int, other numbers as float, text."""
    if isinstance(value, np.floating):
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- splits ---------------------------------------------------------------------------------
def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out), holding out ``fraction`` of every class.

    Deterministic for a given ``seed``; both index arrays are sorted and disjoint. A class with
    two or more rows gives at least one to the held-out part.
    """
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        n_held = int(round(fraction * len(idx)))
        if fraction > 0 and n_held == 0 and len(idx) > 1:
            n_held = 1  # every class is represented in the held-out part
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def random_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into sorted (kept, held_out) with ``fraction`` held out (at least 1)."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = max(1, int(round(fraction * n))) if fraction > 0 else 0
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def split_rows(
    y: np.ndarray,
    task: Task,
    *,
    validation: float | None,
    test: float | None,
    seed: int,
    class_names: tuple[Any, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) row indices; ``test=None`` when the file brings its test split;
    ``validation=None`` draws no validation split (train is every row but the test split).

    Raises:
        DataError: a class with a single row (cannot be stratified), or too few rows.
    """
    index = np.arange(len(y))
    if task.is_classification:
        counts = np.bincount(y, minlength=task.n_classes or 0)
        if test is not None and counts.min() < 2:
            small = int(counts.argmin())
            label = class_names[small] if class_names else small
            raise DataError(
                f"dataset.target: class {label!r} has only {counts[small]} row; a stratified "
                "split needs at least 2 rows per class (one for training, one for test); drop "
                "or merge that class"
            )
        rest, test_idx = (
            stratified_split(y, test, TEST_SEED) if test is not None else (index, index[:0])
        )
        keep, val = stratified_split(y[rest], validation or 0.0, seed)
    else:
        rest, test_idx = random_split(len(y), test, TEST_SEED) if test else (index, index[:0])
        keep, val = random_split(len(rest), validation or 0.0, seed)
    train_idx, val_idx = rest[keep], rest[val]
    no_val = validation is not None and not len(val_idx)
    if len(train_idx) < 2 or no_val or (test is not None and not len(test_idx)):
        raise DataError(
            f"dataset: {len(y)} rows are too few for a training, a validation and a test split "
            f"(got {len(train_idx)}, {len(val_idx)}, {len(test_idx)}); give more rows"
        )
    return train_idx, val_idx, test_idx


def holdout_or_folds(
    y: np.ndarray,
    task: Task,
    validation: Validation,
    seed: int,
    class_names: tuple[Any, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The training part ``y`` (every row but the test split) → (train, validation, folds).

    A holdout fraction: seeded (stratified) train and validation indices, folds ``None``.
    K folds (given, or ``auto`` below :data:`AUTO_CV_BELOW` rows): train is every row, the
    validation split is empty and folds is K (:mod:`nnsweep.data.folds` draws them).

    Raises:
        DataError: too few rows for the validation split, or a class with fewer rows than folds.
    """
    folds = resolve_folds(validation, y, task, class_names)
    if folds is not None:
        return np.arange(len(y)), np.arange(0), folds
    fraction = AUTO_HOLDOUT if validation == AUTO else float(validation)  # type: ignore[arg-type]
    if task.is_classification:
        keep, val = stratified_split(y, fraction, seed)
    else:
        keep, val = random_split(len(y), fraction, seed)
    if len(keep) < 2 or not len(val):
        raise DataError(
            f"dataset: {len(y)} training rows are too few for a training and a validation "
            f"split (got {len(keep)} and {len(val)}); give more rows"
        )
    return keep, val, None


def resolve_folds(
    validation: Validation,
    y: np.ndarray,
    task: Task,
    class_names: tuple[Any, ...] | None = None,
) -> int | None:
    """K when ``validation`` cross-validates the training part ``y``, ``None`` for a holdout.

    ``auto``: :data:`AUTO_FOLDS` folds below :data:`AUTO_CV_BELOW` rows, fewer (down to
    :data:`AUTO_MIN_FOLDS`) when the smallest class has fewer rows than that, else the holdout.

    Raises:
        DataError: ``{folds: K}`` with fewer than K rows, or a class with fewer than K rows
            (every fold must hold each class once), named with the fix.
    """
    if validation == AUTO:
        if not 2 * AUTO_FOLDS <= len(y) < AUTO_CV_BELOW:
            return None
        k = min(AUTO_FOLDS, _smallest_class(y, task)[1])
        return k if k >= AUTO_MIN_FOLDS else None
    if not isinstance(validation, Folds):
        return None
    k = validation.folds
    label, count = _smallest_class(y, task)
    # the largest K that works, suggested in the fix
    fits = min(k - 1, len(y) // 2, count if task.is_classification else len(y))
    fix = (
        f"use fewer folds ({{folds: {fits}}}) or a holdout (0.2)"
        if fits >= 2
        else "use a holdout (0.2)"
    )
    if task.is_classification and count < k:
        name = class_names[label] if class_names and label < len(class_names) else label
        raise DataError(
            f"dataset.validation: {k} folds need at least {k} training rows of every class, but "
            f"class {name!r} has {count}; {fix}"
        )
    if len(y) < 2 * k:
        raise DataError(
            f"dataset.validation: {k} folds need at least {2 * k} training rows, but there are "
            f"{len(y)}; {fix}"
        )
    return k


def _smallest_class(y: np.ndarray, task: Task) -> tuple[int, int]:
    """(class index, rows) of the smallest class of ``y``; rows of ``y`` for regression."""
    if not task.is_classification or not len(y):
        return 0, len(y)
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=task.n_classes or 0)
    return int(counts.argmin()), int(counts.min())
