"""``dataset.test_path``: a held-out test table the user already has, read like the training file.

With ``test_path`` no test split is drawn from ``dataset.path``: every row of it trains or
validates, and export scores the model on the test file's rows. They go through the same
columns and preprocessing as the training rows: the feature schema and the classes learnt
from the training file (:func:`nnsweep.data.features.to_inputs`,
:func:`nnsweep.data.targets.encode_test_target`). Rules:

* the same kind of file as ``dataset.path`` (a CSV/TSV/Parquet for a CSV/Parquet, an ``.npz``
  for an ``.npz``); a CSV/Parquet test file holds the target and every feature column the
  model reads (extra columns are ignored), an ``.npz`` holds ``x`` and ``y`` (or ``x_train``
  and ``y_train``) with as many columns as the training ``x``;
* rows whose target is missing are dropped with a note; a test label no training row holds
  is left out and counted on the card, as for a drawn test split;
* the test file's content joins the dataset's fingerprint, so a study and its export agree
  on which test rows they mean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnsweep.data.features import to_inputs
from nnsweep.data.npzfile import read_npz_table
from nnsweep.data.tables import file_digest, read_frame, table_kind
from nnsweep.data.targets import encode_test_target
from nnsweep.errors import DataError

if TYPE_CHECKING:
    from nnsweep.data.tables import TableSplits

FIELD = "dataset.test_path"


def with_test_file(splits: TableSplits, test_path: Path) -> TableSplits:
    """``splits`` (loaded from ``dataset.path`` with no test split drawn) with its test split
    read from ``test_path`` (see the module rules).

    Raises:
        DataError: one line naming ``dataset.test_path``: a missing or unreadable file, one of
            another kind than ``dataset.path``, missing columns, or no usable row.
    """
    import pandas as pd

    train = Path(splits.source)
    if not test_path.is_file():
        what = "is not a file" if test_path.exists() else "does not exist"
        raise DataError(f"{FIELD}: {test_path} {what}; give the path of the test table")
    with _as_test_path():
        kind = table_kind(test_path)
    if (kind == "npz") != (table_kind(train) == "npz"):
        raise DataError(
            f"{FIELD}: {test_path.name} is a {kind} file but dataset.path {train.name} is not; "
            "give the test rows in the same kind of file as the training rows"
        )
    notes: list[str] = []
    if kind == "npz":
        x, values = _npz_rows(test_path, len(splits.schema.numeric))
    else:
        with _as_test_path():
            frame = read_frame(test_path)
        needed = [splits.target or "", *splits.schema.names]
        missing = [c for c in needed if c not in set(map(str, frame.columns))]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:5]) + (", …" if len(missing) > 5 else "")
            raise DataError(
                f"{FIELD}: {test_path.name} lacks {len(missing)} column(s) of {train.name}: "
                f"{shown}; give the test file the training file's columns"
            )
        present = ~frame[splits.target].isna().to_numpy()
        if not present.all():
            notes.append(
                f"dropped {int((~present).sum())} test row(s) of {test_path.name} whose target "
                "is missing"
            )
        frame = frame.loc[present].reset_index(drop=True)
        x, values = frame, frame[splits.target]
    y, known, unseen = encode_test_target(pd.Series(values), splits.task, splits.class_names)
    if not known.any():
        raise DataError(
            f"{FIELD}: no row of {test_path.name} has a target the model can be scored on "
            f"({', '.join(list(unseen)[:3])} …); check the file and dataset.target"
        )
    rows = x.loc[known] if isinstance(x, pd.DataFrame) else x[known]
    try:
        x_test = to_inputs(rows, splits.schema)
    except DataError as exc:
        raise DataError(f"{FIELD}: {test_path.name}: {exc}") from None
    digest = hashlib.sha256(f"{splits.fingerprint}+{file_digest(test_path)}".encode()).hexdigest()
    origin = (
        f"{test_path.name} ({len(y):,} rows), the test file given as {FIELD}; no test split was "
        f"drawn from {train.name}"
    )
    return replace(
        splits,
        x_test=x_test,
        y_test=y,
        unseen_test=unseen,
        test_origin=origin,
        fingerprint=digest,
        notes=(*splits.notes, *notes),
    )


def _npz_rows(path: Path, width: int) -> tuple[np.ndarray, np.ndarray]:
    with _as_test_path():
        x, y, _, _ = read_npz_table(path)
    if x.shape[1] != width:
        raise DataError(
            f"{FIELD}: {path.name} has {x.shape[1]} columns per row but the training x has "
            f"{width}; give the test rows the training rows' columns"
        )
    return x, y


@contextmanager
def _as_test_path() -> Iterator[None]:
    """Re-label a ``dataset.path`` error raised while reading the test file."""
    try:
        yield
    except DataError as exc:
        text = str(exc).replace(" or --data-path", "")
        if text.startswith("dataset.path"):
            text = FIELD + text.removeprefix("dataset.path")
        raise DataError(text) from None
