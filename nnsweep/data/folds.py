"""K-fold cross-validation of a dataset's training part: the folds, each with its own preprocessing.

Folds are scikit-learn's ``StratifiedKFold`` (classification: every fold keeps each class's
share) or ``KFold`` (regression), shuffled with the sweep's seed, so every trial of a study
sees the same K folds and a fold's scores compare across trials.

A table's preprocessing (training medians, means, standard deviations and category
vocabularies, which :func:`nnsweep.data.features.build_head` bakes into the model) is fitted
again on each fold's training rows (:func:`refit_schema`): a fold's validation rows are scored
by a model whose inputs were scaled without them, as a holdout's are. What stays from the whole
training part is the schema's *structure*: which columns are read and whether each is numeric
or categorical (a column with no usable value in a fold's training rows keeps neutral
statistics, a categorical one the whole part's vocabulary). Digits and word vectors have no
fitted preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.features import (
    NUMERIC_INPUT,
    Column,
    FeatureSchema,
    take_rows,
)

if TYPE_CHECKING:
    from nnsweep.data.load import Dataset
    from nnsweep.tasks import Task


@dataclass(frozen=True)
class Fold:
    """One fold: its number (from 0), the row indices into the training part, and the data to
    fit it on (training rows = the other folds, validation rows = this one)."""

    number: int
    train_index: np.ndarray
    val_index: np.ndarray
    data: Dataset


def fold_indices(
    y: np.ndarray, task: Task, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train, validation) index pairs over ``y``, seeded; stratified for classes."""
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (
        StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        if task.is_classification
        else KFold(n_splits=k, shuffle=True, random_state=seed)
    )
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros((len(y), 1)), y)]


def make_folds(dataset: Dataset, seed: int) -> list[Fold]:
    """The K folds of a cross-validated ``dataset`` (``dataset.folds`` is K), each a
    :class:`~nnsweep.data.load.Dataset` whose training and validation splits are the fold's and
    whose schema is fitted on its training rows; the test split is the dataset's, untouched.
    """
    if not dataset.folds:
        raise ValueError("the dataset is not cross-validated (dataset.folds is None)")
    folds = []
    pairs = fold_indices(dataset.y_train, dataset.task, dataset.folds, seed)
    for i, (train, val) in enumerate(pairs):
        x_train = take_rows(dataset.x_train, train)
        schema = refit_schema(dataset.schema, x_train) if dataset.schema is not None else None
        data = replace(
            dataset,
            x_train=x_train,
            y_train=dataset.y_train[train],
            x_val=take_rows(dataset.x_train, val),
            y_val=dataset.y_train[val],
            schema=schema,
            folds=None,
        )
        folds.append(Fold(i, train, val, data))
    return folds


def refit_schema(schema: FeatureSchema, x_train: dict[str, Any]) -> FeatureSchema:
    """``schema`` with its statistics learnt again from ``x_train``, a fold's training rows as
    model inputs (:func:`nnsweep.data.features.to_inputs`): numeric medians, means and standard
    deviations; category vocabularies (same rules as :func:`nnsweep.data.features.fit_schema`)."""
    # the very rules fit_schema applies to a whole training split, applied to a fold's rows
    from nnsweep.data.features import _categorical_column, _numeric_column

    columns: list[Column] = []
    numeric = np.asarray(x_train[NUMERIC_INPUT]) if schema.numeric else None
    j = 0
    for column in schema.columns:
        if column.kind == "numeric":
            assert numeric is not None
            fitted = _numeric_column(column.name, numeric[:, j])
            j += 1
            # no finite value in this fold: neutral statistics (0 after imputation)
            columns.append(fitted or Column(column.name, "numeric", NUMERIC_INPUT))
            continue
        values = _strings(x_train[column.input])
        fitted = _categorical_column(column.name, values, set(), [])
        columns.append(column if fitted is None else replace(column, vocabulary=fitted.vocabulary))
    return FeatureSchema(tuple(columns), schema.notes)


def _strings(tensor: Any) -> np.ndarray:
    """A string input column (tensor or array, shape ``(n, 1)``) as a flat object array."""
    raw = np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor).reshape(-1)
    # to_inputs wrote missing cells as MISSING already: the values are the categories as read
    values = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw]
    return np.array(values, dtype=object)
