"""tf.data input pipelines for a fit: seeded shuffled training batches, cached validation batches.

Keras' ``model.fit`` on NumPy arrays builds its own pipeline and, on small data, pays for it
every epoch, the validation pass most of all: on 3,600 training and 400 validation digits
(784-256-256-10, batch 128, 10 epochs, 2 cores) a fit from arrays took 1.84 s, from these
pipelines 1.41 s (``bench/overhead.py`` prints both side by side). On 54,000 Fashion images
the two take the same time; the difference is a per-epoch cost, not a per-step one.

Like Keras on arrays, the training rows come in a new order every epoch (a seeded
permutation, so a sweep run twice with ``--jobs 1`` trains on the same batches) and the last
batch of an epoch is short. Rows are gathered by index, so the shuffle buffer holds row
numbers, never copies of the rows; the arrays become tensors once per fit, as Keras does.
Table inputs (a dict of columns, text columns included) work the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

Inputs = np.ndarray | Mapping[str, Any]


def _tensors(x: Inputs, y: np.ndarray) -> tuple[Any, Any]:
    import tensorflow as tf

    inputs = (
        {k: tf.convert_to_tensor(np.asarray(v)) for k, v in x.items()}
        if isinstance(x, Mapping)
        else tf.convert_to_tensor(np.asarray(x))
    )
    return inputs, tf.convert_to_tensor(np.asarray(y))


def _threading(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Keep tf.data's threads inside the worker's TensorFlow thread budget, when one is set."""
    import tensorflow as tf

    budget = tf.config.threading.get_intra_op_parallelism_threads()
    if budget <= 0:  # no budget: TensorFlow's defaults, as Keras' own pipeline has
        return ds
    options = tf.data.Options()
    options.threading.private_threadpool_size = budget
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def train_batches(x: Inputs, y: np.ndarray, *, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches of ``batch_size`` rows of ``(x, y)``, in a new seeded order every epoch.

    Args:
        x: the training inputs (an array, or a table's dict of columns).
        y: the targets, one per row.
        batch_size: rows per batch; the last batch of an epoch holds the rest.
        seed: the permutation's seed (the trial's), so a rerun sees the same batches.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    inputs, targets = _tensors(x, y)
    n = int(len(y))

    def gather(index: tf.Tensor) -> tuple[Any, tf.Tensor]:
        rows = tf.nest.map_structure(lambda t: tf.gather(t, index), inputs)
        return rows, tf.gather(targets, index)

    ds = (
        tf.data.Dataset.range(n)
        .shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(gather)
        .prefetch(2)
    )
    return _threading(ds)


def eval_batches(x: Inputs, y: np.ndarray, *, batch_size: int) -> tf.data.Dataset:
    """Batches of ``(x, y)`` in row order, kept in memory after the first pass (validation)."""
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = tf.data.Dataset.from_tensor_slices(_tensors(x, y)).batch(batch_size).cache()
    return _threading(ds)
