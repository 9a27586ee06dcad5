"""The tabular techniques of the search space, as parts of the model's input block.

Built from stock Keras layers (``EinsumDense``, ``Embedding``, ``StringLookup``, ``Reshape``)
and ``keras.ops`` with the training statistics as constants, never from custom classes: a
``model.keras`` that uses them loads with plain ``keras.saving.load_model`` (``safe_mode`` on)
in a process that never imported nnsweep, and still takes raw rows.

* :func:`quantile_normal` (``input_transform: quantile``): each numeric column through the
  piecewise-linear CDF of its training quantiles, then the normal quantile function
  (``sqrt(2) * erfinv(2p - 1)``, p kept within [:data:`P_CLIP`, 1 - :data:`P_CLIP`]), as
  scikit-learn's ``QuantileTransformer(output_distribution="normal")`` does.
* :func:`piecewise_linear` (``numeric_embedding: piecewise_linear``, Gorishniy et al. 2022):
  each column encoded over the bins between its training quantiles (1 for bins below the
  value, the fraction inside its bin, 0 above), then a per-column linear map to
  ``embedding_dim`` values and a ReLU.
* :func:`periodic` (``numeric_embedding: periodic``): each transformed column as
  ``sin``/``cos`` of :data:`PERIODIC_FREQUENCIES` trained frequencies (initialised from
  N(0, :data:`PERIODIC_SCALE`)), then a per-column linear map and a ReLU.
* :func:`categorical_block` (``categorical_encoding: embedding``): a column with
  :data:`~nnsweep.spec.tabular.MANY_CATEGORIES` or more categories as a learned
  ``embedding_dim``-wide vector instead of its one-hot.

:func:`head_width` and :func:`head_params` compute the block's output width and trainable
parameters without building it (for :func:`nnsweep.train.model.count_params`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nnsweep.data.features import NUMERIC_INPUT
from nnsweep.data.head import (
    build_head,
    categorical_input,
    numeric_input,
    one_hot,
    standardise,
)
from nnsweep.spec.tabular import MANY_CATEGORIES

if TYPE_CHECKING:
    import keras

    from nnsweep.data.features import Column, FeatureSchema

P_CLIP = 1e-3  # the quantile transform's outputs stay within about ±3.1
PERIODIC_FREQUENCIES = 16
PERIODIC_SCALE = 0.1
_MIN_WIDTH = 1e-12  # a bin of zero width (never, after de-duplication) still divides safely


def knots(columns: Sequence[Column]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column, its bins' left edges, widths and a 1/0 mask, padded to the most bins.

    A column with one distinct training value has no bin: its mask is all zero.
    """
    n_bins = max([1, *(len(c.quantiles) - 1 for c in columns)])
    left = np.zeros((len(columns), n_bins), np.float32)
    width = np.ones((len(columns), n_bins), np.float32)
    mask = np.zeros((len(columns), n_bins), np.float32)
    for i, column in enumerate(columns):
        q = np.asarray(column.quantiles, np.float64)
        if len(q) < 2:
            continue
        k = len(q) - 1
        left[i, :k] = q[:-1]
        width[i, :k] = np.maximum(np.diff(q), _MIN_WIDTH)
        mask[i, :k] = 1.0
    return left, width, mask


def bin_fractions(x: keras.KerasTensor, columns: Sequence[Column]) -> keras.KerasTensor:
    """``(rows, columns, bins)``: how much of each training-quantile bin lies below ``x``."""
    from keras import ops

    left, width, mask = knots(columns)
    t = ops.clip(ops.divide(ops.subtract(ops.expand_dims(x, -1), left), width), 0.0, 1.0)
    return ops.multiply(t, mask)


def quantile_normal(x: keras.KerasTensor, columns: Sequence[Column]) -> keras.KerasTensor:
    """``x`` (imputed raw values) → normal scores through the training quantiles."""
    from keras import ops

    _, _, mask = knots(columns)
    bins = np.maximum(mask.sum(axis=1), 1.0).astype(np.float32)
    p = ops.divide(ops.sum(bin_fractions(x, columns), axis=-1), bins)
    # a column with no bin (one training value) sits at the median: p = 0.5, score 0
    p = ops.where(mask.sum(axis=1) > 0, p, np.float32(0.5))
    centred = ops.clip(ops.subtract(ops.multiply(p, 2.0), 1.0), 2 * P_CLIP - 1, 1 - 2 * P_CLIP)
    return ops.multiply(np.float32(math.sqrt(2.0)), ops.erfinv(centred))


def _per_column_linear(
    x: keras.KerasTensor, n_columns: int, dim: int, name: str
) -> keras.KerasTensor:
    """``(rows, columns, k)`` → ReLU of a separate linear map per column → ``(rows, columns *
    dim)``."""
    import keras

    out = keras.layers.EinsumDense(
        "bfi,fid->bfd",
        output_shape=(n_columns, dim),
        bias_axes="fd",
        activation="relu",
        name=f"{name}_linear",
    )(x)
    return keras.layers.Reshape((n_columns * dim,), name=f"{name}_flat")(out)


def piecewise_linear(
    x: keras.KerasTensor, columns: Sequence[Column], dim: int
) -> keras.KerasTensor:
    """The piecewise-linear embedding of ``x`` (imputed raw values): ``len(columns) * dim``."""
    return _per_column_linear(bin_fractions(x, columns), len(columns), dim, "ple")


def periodic(x: keras.KerasTensor, n_columns: int, dim: int) -> keras.KerasTensor:
    """The periodic embedding of ``x`` (transformed values): ``n_columns * dim`` values."""
    import keras
    from keras import ops

    k = PERIODIC_FREQUENCIES
    angles = keras.layers.EinsumDense(
        "bf,fk->bfk",
        output_shape=(n_columns, k),
        kernel_initializer=keras.initializers.RandomNormal(stddev=PERIODIC_SCALE),
        name="periodic_frequencies",
    )(x)
    angles = ops.multiply(angles, np.float32(2 * math.pi))
    waves = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    return _per_column_linear(waves, n_columns, dim, "periodic")


def embeds(column: Column, encoding: str) -> bool:
    """Whether ``column`` (categorical) gets a learned embedding under ``encoding``."""
    return encoding == "embedding" and len(column.vocabulary) >= MANY_CATEGORIES


def categorical_block(
    raw: keras.KerasTensor, column: Column, encoding: str, dim: int
) -> keras.KerasTensor:
    """A categorical input one-hot, or embedded (see :func:`embeds`) in ``dim`` values."""
    import keras

    if not embeds(column, encoding):
        return one_hot(raw, column)
    index = keras.layers.StringLookup(
        vocabulary=list(column.vocabulary),
        num_oov_indices=1,
        output_mode="int",
        name=f"index_{column.input}",
    )(raw)
    vectors = keras.layers.Embedding(len(column.vocabulary) + 1, dim, name=f"embed_{column.input}")(
        index
    )
    return keras.layers.Reshape((dim,), name=f"embed_{column.input}_flat")(vectors)


def tabular_head(
    schema: FeatureSchema,
    *,
    input_transform: str = "standard",
    numeric_embedding: str = "none",
    categorical_encoding: str = "onehot",
    embedding_dim: int = 8,
) -> tuple[dict[str, keras.KerasTensor], keras.KerasTensor]:
    """The model's inputs by name and the features they feed, with the chosen techniques.

    The defaults give exactly :func:`nnsweep.data.head.build_head`'s block.

    Raises:
        ValueError: an unknown technique name.
    """
    import keras

    plain = (input_transform, numeric_embedding, categorical_encoding)
    if plain == ("standard", "none", "onehot"):
        return build_head(schema)
    _check(input_transform, ("standard", "quantile"), "input_transform")
    _check(numeric_embedding, ("none", "periodic", "piecewise_linear"), "numeric_embedding")
    _check(categorical_encoding, ("onehot", "embedding"), "categorical_encoding")
    inputs: dict[str, keras.KerasTensor] = {}
    parts = []
    if schema.numeric:
        cols = schema.numeric
        raw, filled = numeric_input(schema)
        inputs[NUMERIC_INPUT] = raw
        if numeric_embedding == "piecewise_linear":
            parts.append(piecewise_linear(filled, cols, embedding_dim))
        else:
            x = (
                quantile_normal(filled, cols)
                if input_transform == "quantile"
                else standardise(filled, cols)
            )
            if numeric_embedding == "periodic":
                x = periodic(x, len(cols), embedding_dim)
            parts.append(x)
    for column in schema.categorical:
        raw = categorical_input(column)
        inputs[column.input] = raw
        parts.append(categorical_block(raw, column, categorical_encoding, embedding_dim))
    features = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return inputs, features


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")


def head_width(
    schema: FeatureSchema, numeric_embedding: str, categorical_encoding: str, dim: int
) -> int:
    """Values the first hidden layer sees from ``schema``'s block with these techniques."""
    n_numeric = len(schema.numeric)
    width = n_numeric * dim if numeric_embedding != "none" else n_numeric
    for column in schema.categorical:
        embedded = embeds(column, categorical_encoding)
        width += dim if embedded else len(column.vocabulary) + 1
    return width


def head_params(
    schema: FeatureSchema, numeric_embedding: str, categorical_encoding: str, dim: int
) -> int:
    """Trainable parameters of the block (the plain block has none)."""
    f = len(schema.numeric)
    count = 0
    if f and numeric_embedding == "periodic":
        k = PERIODIC_FREQUENCIES
        count += f * k + f * (2 * k * dim + dim)
    elif f and numeric_embedding == "piecewise_linear":
        n_bins = knots(schema.numeric)[0].shape[1]
        count += f * (n_bins * dim + dim)
    for column in schema.categorical:
        if embeds(column, categorical_encoding):
            count += (len(column.vocabulary) + 1) * dim
    return count
