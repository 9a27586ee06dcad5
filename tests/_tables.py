"""Synthetic tables for export and predict tests: learnable, seeded, with the awkward parts of
real ones (string and gapped labels, a categorical column, a constant column, missing values)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COLOURS = ("red", "green", "blue")


def make_table(kind: str, n: int = 300, seed: int = 0) -> Any:
    """A DataFrame with features ``x1``..``x3``, ``colour``, ``const`` and a ``label`` target.

    ``binary``: labels ``"good"``/``"bad"``; ``multiclass``: integer labels 1, 3, 7 (gapped);
    ``regression``: a float around 100. ``x3`` has missing cells.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    colour = rng.choice(COLOURS, size=n)
    red = (colour == "red").astype(float)
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "colour": colour})
    frame["const"] = 1.0
    frame.loc[rng.random(n) < 0.1, "x3"] = np.nan
    if kind == "binary":
        score = 2 * x[:, 0] + x[:, 1] + 1.5 * red - 0.5
        frame["label"] = np.where(score > 0, "good", "bad")
    elif kind == "multiclass":
        scores = np.stack([2 * x[:, 0], 2 * x[:, 1] + red, -2 * x[:, 0] - 2 * x[:, 1]], axis=1)
        frame["label"] = np.array([1, 3, 7])[scores.argmax(axis=1)]
    elif kind == "regression":
        frame["label"] = 100 + 3 * x[:, 0] - 2 * x[:, 1] + 5 * red + rng.normal(0, 0.3, n)
    else:
        raise ValueError(kind)
    return frame


def write_table(folder: Path, kind: str, n: int = 300, seed: int = 0) -> Path:
    path = folder / f"{kind}.csv"
    make_table(kind, n, seed).to_csv(path, index=False)
    return path
