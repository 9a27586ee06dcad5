"""Train-eval: score the model with dropout off on a fixed slice of its training rows each epoch.

Keras' training ``loss`` and metrics are measured *with dropout on* and averaged over an epoch
whose weights kept changing, so with dropout 0.5 they sit well below what the same weights
score at inference: the train–validation gap the fit diagnosis reads comes out too small, and
overfitting goes unseen. :class:`TrainEval` makes the comparison fair: at each epoch end it
evaluates the model as it is then (``model.evaluate``, so ``training=False``: dropout off, the
compiled loss and metrics) on a fixed, seeded subset of the training split as large as the
validation split (at most :data:`MAX_ROWS` rows), and writes the results into the epoch's logs
as ``train_eval_loss`` and ``train_eval_<metric>`` (``accuracy``, ``auc`` for binary tasks,
``mae`` for regression), plus ``train_eval_baseline_loss``: the trivial predictor's loss on the
same rows (the training mean for regression, the training class frequencies for
classification), a constant the regression verdict measures the fit against.

Put it first in the fit's callbacks: the callbacks after it (the MLflow epoch logger, pruning,
Keras' ``History``) receive the same logs dict, so the keys become per-epoch curves next to
``loss`` and ``val_loss``. The subset is drawn once (:func:`subset_index`) and stays the same
across epochs and trials of a sweep, so curves are comparable. Same size as the validation
split means the same sampling noise on both sides of the gap; the cap keeps the cost small on
large datasets (5,000 rows of 784 values are one forward pass of a few ms on a CPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from nnsweep.data.features import n_rows, take_rows
from nnsweep.tasks import (
    ALL_TRAIN_EVAL_KEYS,
    BASELINE_KEY,
    REGRESSION,
    TRAIN_EVAL_PREFIX,
    Task,
    target_scale,
)

PREFIX = TRAIN_EVAL_PREFIX
LOSS_KEY = PREFIX + "loss"
__all__ = ["ALL_TRAIN_EVAL_KEYS", "LOSS_KEY", "PREFIX"]
MAX_ROWS = 5000
# Rows per evaluation batch; the scores do not depend on it (Keras averages over rows).
EVAL_BATCH = 1024
_EPS = 1e-7  # Keras' clipping of probabilities in its cross-entropy losses


def train_eval_keys(task: Task) -> tuple[str, ...]:
    """The keys :class:`TrainEval` adds to each epoch's logs for ``task``."""
    return (LOSS_KEY, *(PREFIX + m for m in task.metric_names), BASELINE_KEY)


def subset_size(n_train: int, n_val: int, cap: int = MAX_ROWS) -> int:
    """Rows evaluated: as many as the validation split, at most ``cap`` and ``n_train``."""
    return max(0, min(n_train, n_val, cap))


def subset_index(n_train: int, n_val: int, seed: int, cap: int = MAX_ROWS) -> np.ndarray:
    """The training rows (sorted indexes) evaluated each epoch: seeded, without replacement."""
    size = subset_size(n_train, n_val, cap)
    rng = np.random.default_rng([seed, 0x7E7A1])  # not the split's stream
    return np.sort(rng.choice(n_train, size=size, replace=False)).astype(np.int64)


def baseline_loss(task: Task, y_train: np.ndarray, y_subset: np.ndarray) -> float:
    """The compiled loss of the trivial predictor fitted on ``y_train``, on ``y_subset``.

    Regression: ``mse`` of the training mean, weighted as the model weights its loss (by
    1 / the training target's variance, :func:`nnsweep.tasks.target_scale`). Classification:
    the cross-entropy of predicting the training class frequencies for every row (clipped as
    Keras clips).
    """
    y_sub = np.asarray(y_subset)
    if len(y_sub) == 0:
        return float("nan")
    if task.kind == REGRESSION:
        mean, std = target_scale(y_train)
        return float(np.mean((np.asarray(y_sub, np.float64).reshape(-1) - mean) ** 2)) / std**2
    labels = np.asarray(y_train, np.int64).reshape(-1)
    prior = np.bincount(labels, minlength=int(task.n_classes or 2))
    prior = np.clip(prior / max(len(labels), 1), _EPS, 1 - _EPS)
    return float(-np.log(prior[np.asarray(y_sub, np.int64).reshape(-1)]).mean())


@cache
def _callback_class() -> type:
    """The Keras callback class, defined on first use so importing this module skips Keras."""
    import keras

    class TrainEval(keras.callbacks.Callback):
        """Adds ``train_eval_*`` (dropout off, fixed training rows) to each epoch's logs.

        Args:
            x: the subset's inputs (an array, or a dict of columns for tables).
            y: its targets.
            baseline: :func:`baseline_loss` of those rows, logged as ``train_eval_baseline_loss``.
        """

        def __init__(self, x: np.ndarray | Mapping[str, Any], y: np.ndarray, baseline: float):
            import tensorflow as tf

            super().__init__()
            self.y, self.baseline = np.asarray(y), float(baseline)
            self.rows = len(self.y)
            # Built once: model.evaluate on arrays rebuilds its input pipeline on every call
            # (~100 ms on 400 rows), on a ready dataset it costs ~10 ms.
            inputs = dict(x) if isinstance(x, Mapping) else x
            self.data = tf.data.Dataset.from_tensor_slices((inputs, self.y)).batch(EVAL_BATCH)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is None or self.rows == 0:
                return
            scores = self.model.evaluate(self.data, verbose=0, return_dict=True)
            for key, value in scores.items():
                logs[PREFIX + key] = float(value)
            logs[BASELINE_KEY] = self.baseline

    return TrainEval


def train_eval_callback(
    task: Task,
    x_train: np.ndarray | Mapping[str, Any],
    y_train: np.ndarray,
    n_val: int,
    seed: int,
    cap: int = MAX_ROWS,
) -> Any:
    """A :class:`TrainEval` callback on the seeded subset of ``x_train`` for this split.

    Args:
        task: the dataset's task (for the baseline loss).
        x_train, y_train: the training split (array or dict of table columns).
        n_val: rows of the validation split: the subset has as many (at most ``cap``).
        seed: the sweep's seed; the same seed gives the same rows.
    """
    index = subset_index(n_rows(x_train), n_val, seed, cap)
    y = np.asarray(y_train)[index]
    return _callback_class()(take_rows(x_train, index), y, baseline_loss(task, y_train, y))
