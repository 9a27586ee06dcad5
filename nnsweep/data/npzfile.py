"""Read a user's ``.npz`` table: ``x`` and ``y``, or ``x_train``/``y_train`` (+ a test pair)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnsweep.data.arrays import MAX_TABLE_VALUES, read_npz
from nnsweep.errors import DataError


def read_npz_table(
    path: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(x, y, x_test, y_test) of an ``.npz`` table; x as 2-D rows; no pickled objects.

    The caller checks the path first (:func:`nnsweep.data.tables.load_table` does).

    Raises:
        DataError: unreadable file, missing or mismatched arrays, non-numeric ``x``.
    """
    names: list[str] = []

    def choose(found: list[str]) -> list[str]:
        keys = set(found)
        if {"x_train", "y_train"} <= keys:
            names.extend(["x_train", "y_train"])
            if {"x_test", "y_test"} <= keys:
                names.extend(["x_test", "y_test"])
        elif {"x", "y"} <= keys:
            names.extend(["x", "y"])
        else:
            raise DataError(
                f"dataset.path: {path.name} holds {', '.join(sorted(keys)) or 'no arrays'}; "
                "an .npz table needs x and y, or x_train and y_train (+ x_test, y_test)"
            )
        return names

    read = read_npz(
        path,
        choose,
        max_count=MAX_TABLE_VALUES,
        kinds="biufU",
        what="numbers or text labels",
        error=DataError,
        label=f"dataset.path: {path}",
    )
    arrays = [read[k] for k in names]
    pairs = [(arrays[i], arrays[i + 1], names[i], names[i + 1]) for i in range(0, len(arrays), 2)]
    out: list[np.ndarray] = []
    for x, y, xn, yn in pairs:
        if x.dtype.kind not in "iufb":
            raise DataError(f"dataset.path: {xn} holds {x.dtype} values; x must be numbers")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(
                f"dataset.path: {yn} has shape {y.shape}; it needs one label or value per row "
                "(for one-hot labels save y.argmax(axis=1))"
            )
        if x.ndim == 0 or len(x) != len(y) or len(y) == 0:
            raise DataError(
                f"dataset.path: {xn} has {len(x) if x.ndim else 0} rows and {yn} {len(y)}; they "
                "need the same, non-zero number of rows"
            )
        out += [x.reshape(len(x), -1), y]
    if len(out) == 4 and out[0].shape[1] != out[2].shape[1]:
        raise DataError("dataset.path: x_train and x_test have different numbers of columns")
    if len(out) == 4:
        return out[0], out[1], out[2], out[3]
    return out[0], out[1], None, None
