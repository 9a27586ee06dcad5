"""The preprocessing head of a table's model: raw columns in, float32 features out.

Built from a :class:`~nnsweep.data.features.FeatureSchema` fitted on the training split, with
stock Keras layers and ``keras.ops`` only, so a saved model loads in plain Keras with
``safe_mode=True``: numeric columns imputed with the training median, standardised and clipped
(:func:`numeric_input`, :func:`standardise`), categorical ones one-hot over the training
vocabulary (:func:`one_hot`). :mod:`nnsweep.train.layers` builds the searchable variants
(quantile inputs, numeric and categorical embeddings) from the same pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nnsweep.data.features import CLIP, NUMERIC_INPUT, Column, FeatureSchema

if TYPE_CHECKING:
    import keras


def build_head(schema: FeatureSchema) -> tuple[dict[str, keras.KerasTensor], keras.KerasTensor]:
    """The model's inputs (by name) and the preprocessed float32 features they feed."""
    import keras

    inputs: dict[str, keras.KerasTensor] = {}
    parts = []
    if schema.numeric:
        raw, filled = numeric_input(schema)
        inputs[NUMERIC_INPUT] = raw
        parts.append(standardise(filled, schema.numeric))
    for column in schema.categorical:
        raw = categorical_input(column)
        inputs[column.input] = raw
        parts.append(one_hot(raw, column))
    features = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return inputs, features


def numeric_input(schema: FeatureSchema) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The ``numeric`` input, and its values with missing ones set to the training median."""
    import keras
    from keras import ops

    cols = schema.numeric
    raw = keras.Input(shape=(len(cols),), dtype="float32", name=NUMERIC_INPUT)
    median = np.array([c.median for c in cols], dtype=np.float32)
    return raw, ops.where(ops.isfinite(raw), raw, median)


def standardise(x: keras.KerasTensor, columns: Sequence[Column]) -> keras.KerasTensor:
    """``x`` standardised with the training mean and standard deviation, clipped to ±CLIP."""
    from keras import ops

    mean = np.array([c.mean for c in columns], dtype=np.float32)
    std = np.array([c.std for c in columns], dtype=np.float32)
    return ops.clip(ops.divide(ops.subtract(x, mean), std), -CLIP, CLIP)


def categorical_input(column: Column) -> keras.KerasTensor:
    """The string input of a categorical column."""
    import keras

    return keras.Input(shape=(1,), dtype="string", name=column.input)


def one_hot(raw: keras.KerasTensor, column: Column) -> keras.KerasTensor:
    """A categorical input one-hot over its training vocabulary (+ the unseen slot)."""
    import keras

    lookup = keras.layers.StringLookup(
        vocabulary=list(column.vocabulary),
        num_oov_indices=1,
        output_mode="one_hot",
        name=f"onehot_{column.input}",
    )
    return lookup(raw)
