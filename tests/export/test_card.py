"""The card's one-line architecture says what the model holds: input stage, layers, extras."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnsweep.data.features import fit_schema
from nnsweep.data.modelio import ModelIO
from nnsweep.export.card import architecture
from nnsweep.tasks import Task
from nnsweep.train.model import HyperParams


def _table_io() -> ModelIO:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=30), "city": [f"c{i % 12}" for i in range(30)]})
    schema = fit_schema(frame, {"a": "numeric", "city": "categorical"})
    return ModelIO(Task("multiclass", 3), None, schema, "numeric", schema.width)


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        (
            {},
            "2 columns → 14 features (numbers standardised) → Dense(16, relu) → Dense(3, softmax)",
        ),
        (
            {"input_transform": "quantile", "numeric_embedding": "piecewise_linear"},
            "(numbers as piecewise-linear embeddings of their training-quantile bins) → Dense(16",
        ),
        (
            {"input_transform": "quantile", "numeric_embedding": "periodic", "embedding_dim": 4},
            "2 columns → 17 features (numbers quantile-normalised, then periodic embeddings)",
        ),
        ({"numeric_embedding": "periodic"}, "(numbers standardised, then periodic embeddings)"),
        (
            {"categorical_encoding": "embedding", "embedding_dim": 4},
            "(numbers standardised; 1 categorical column(s) of 10+ values as 4-d embeddings)",
        ),
        ({"batch_norm": True}, "→ Dense(16, relu, batch norm) → Dense(3, softmax)"),
        ({"dropout": 0.25}, "→ Dense(16, relu) (with Dropout(0.25)) → Dense(3, softmax)"),
    ],
)
def test_a_table_models_line_names_its_input_stage_and_extras(
    extra: dict[str, object], want: str
) -> None:
    hp = HyperParams(n_layers=1, units=(16,), **extra)
    assert want in architecture(hp, _table_io())


def test_categories_below_the_embedding_threshold_stay_one_hot_on_the_line() -> None:
    frame = pd.DataFrame({"a": np.arange(30.0), "size": ["s", "m", "l"] * 10})
    schema = fit_schema(frame, {"a": "numeric", "size": "categorical"})
    io = ModelIO(Task("binary", 2), None, schema, "numeric", schema.width)
    hp = HyperParams(n_layers=1, units=(8,), categorical_encoding="embedding")
    assert "embeddings" not in architecture(hp, io)


def test_dropout_on_every_hidden_layer_says_each() -> None:
    hp = HyperParams(n_layers=2, units=(32, 8), activation="gelu", dropout=0.1)
    io = ModelIO(Task("multiclass", 10), None, None, "pixels", 784)
    line = architecture(hp, io)
    assert (
        line
        == "784 → Dense(32, gelu) → Dense(8, gelu) (each with Dropout(0.1)) → Dense(10, softmax)"
    )
