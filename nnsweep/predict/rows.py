"""``nnsweep predict`` on rows: raw feature rows in, original labels (or values) out.

For every model that is not a digit model: a table's (CSV, Parquet or NPZ rows with the
feature columns the card names; any other column, such as the target, is ignored) and an
array dataset's (``.npy``/``.npz`` rows of the model's input width, e.g. IMDB's multi-hot
vectors). Each input row gives one :class:`RowPrediction`: the original class label and its
probability for classification, the value in the target's units for regression.

Inputs are bounded before they are read: a rows file is at most :data:`MAX_ROWS_FILE_BYTES`,
and a compressed one (``.csv.gz``, Parquet) at most :data:`MAX_INFLATED_BYTES` decompressed
(a ``.gz`` is inflated in a stream and counted, a Parquet file's footer read) so that a
compression bomb is refused before pandas holds it; arrays are checked by
:mod:`nnsweep.data.arrays` (header, zip member, dtype); one call predicts at most :data:`MAX_ROWS`
rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.rowmodel import every_probability
from nnsweep.errors import DataError, ExportError, first_line

if TYPE_CHECKING:
    from nnsweep.data.modelio import ModelIO
    from nnsweep.predict.loader import LoadedModel

MAX_ROWS = 1_000_000
MAX_ROWS_FILE_BYTES = 256 << 20
MAX_INFLATED_BYTES = 1 << 30  # what a .csv.gz or a Parquet file may hold once decompressed
NPZ_ROW_KEYS = ("x", "x_test", "rows")
ROW_SUFFIXES = ".csv, .tsv, .csv.gz, .parquet, .npz or .npy"


@dataclass(frozen=True)
class RowPrediction:
    """One input row's prediction: ``prediction`` is the original label (classification) or
    the value (regression); ``probability`` that of the predicted label, ``probabilities``
    every label's (classification only)."""

    input: str
    row: int
    prediction: Any
    probability: float | None
    probabilities: dict[str, float] | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input, "row": self.row, "prediction": self.prediction}
        if self.probability is not None:
            out["probability"] = self.probability
            out["probabilities"] = self.probabilities
        return out


Batch = tuple[str, Any, int]  # (file name, model inputs, rows)


def read_batches(paths: Sequence[str | Path], io: ModelIO) -> list[Batch]:
    """Every file of rows in ``paths`` read and checked for ``io``'s model, before any model
    is loaded (see :func:`read_model_rows`).

    Raises:
        ExportError: a file that is missing, unreadable, oversized, of the wrong kind, or
            lacking the model's columns (named), with the fix.
    """
    if not paths:
        raise ExportError(f"INPUT: give at least one file of rows ({ROW_SUFFIXES})")
    batches: list[Batch] = []
    total = 0
    for raw in paths:
        path = Path(raw)
        inputs, n = read_model_rows(path, io, max_rows=MAX_ROWS - total)
        batches.append((str(path), inputs, n))
        total += n
    return batches


def predict_rows(loaded: LoadedModel, batches: list[Batch]) -> list[RowPrediction]:
    """Predict every row of ``batches`` (from :func:`read_batches`) with ``loaded``."""
    io = loaded.io
    results: list[RowPrediction] = []
    for name, inputs, n in batches:
        output = loaded(inputs)
        labels, probs = io.task.labelled(output, io.labels if io.task.is_classification else None)
        every = every_probability(io, output)
        for i in range(n):
            results.append(
                RowPrediction(
                    input=name,
                    row=i,
                    prediction=labels[i],
                    probability=probs[i] if probs is not None else None,
                    probabilities=every[i] if every is not None else None,
                )
            )
    return results


def check_row_file(path: Path) -> str:
    """The kind of a file of rows (``npy``, ``npz``, ``csv``, ``parquet``), once it is known
    to be there, of a supported type and within :data:`MAX_ROWS_FILE_BYTES` (a ``.csv.gz``
    within :data:`MAX_INFLATED_BYTES` decompressed).

    Raises:
        ExportError: naming the file, the rule and the fix.
    """
    from nnsweep.spec.dataset import table_format

    if not path.is_file():
        raise ExportError(f"INPUT {path}: no such file")
    suffix = path.suffix.lower()
    kind = "npy" if suffix == ".npy" else table_format(path)
    if kind is None:
        raise ExportError(
            f"INPUT {path}: unsupported file type {suffix or '(none)'}; give {ROW_SUFFIXES}"
        )
    size = path.stat().st_size
    if size > MAX_ROWS_FILE_BYTES:
        raise ExportError(
            f"INPUT {path}: {size:,} bytes, over the limit of {MAX_ROWS_FILE_BYTES:,} for a file "
            "of rows; split it into smaller files"
        )
    if kind == "csv" and suffix == ".gz":
        _check_inflated(path, kind, MAX_ROWS)
    return kind


def read_model_rows(path: Path, io: ModelIO, *, max_rows: int = MAX_ROWS) -> tuple[Any, int]:
    """The rows of ``path`` as ``io``'s model takes them, and how many there are.

    Raises:
        ExportError: as :func:`predict_rows` says.
    """
    kind = check_row_file(path)
    if kind in ("npy", "npz"):
        rows: Any = _read_array(path, io, max_rows)
        n = len(rows)
    elif io.schema is None:
        raise ExportError(
            f"INPUT {path}: this model reads {io.input_width} numbers per row from an array; "
            "give a .npy or .npz file"
        )
    else:
        from nnsweep.data.tables import read_rows

        if kind == "parquet":  # a .csv.gz was measured by check_row_file
            _check_inflated(path, kind, max_rows)
        try:
            rows = read_rows(path, io.schema)
        except DataError as exc:
            raise _input_error(path, exc) from None
        n = len(rows)
    if n == 0:
        raise ExportError(f"INPUT {path}: holds no rows; give at least one")
    if n > max_rows:
        raise ExportError(
            f"INPUT: more than {MAX_ROWS:,} rows in one call; predict them in batches"
        )
    if io.schema is None:
        return rows, n
    from nnsweep.data.features import to_inputs

    try:
        return to_inputs(rows, io.schema), n
    except DataError as exc:
        raise _input_error(path, exc) from None


def _check_inflated(path: Path, kind: str, max_rows: int) -> None:
    """Refuse a compressed table that would decompress past :data:`MAX_INFLATED_BYTES` (or,
    for Parquet, hold more than ``max_rows`` rows), before it is parsed."""
    limit = f"over the limit of {MAX_INFLATED_BYTES:,} bytes decompressed; split it"
    if kind == "csv" and path.suffix.lower() == ".gz":
        import gzip
        import zlib

        total = 0
        try:
            with gzip.open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    total += len(chunk)
                    if total > MAX_INFLATED_BYTES:
                        raise ExportError(f"INPUT {path}: {limit}")
        except (OSError, EOFError, zlib.error) as exc:
            raise ExportError(f"INPUT {path}: not a readable .gz file ({exc})") from None
    elif kind == "parquet":
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
        except ImportError:  # pandas will say it needs pyarrow
            return
        except Exception as exc:  # pyarrow raises its own types for a malformed footer
            reason = first_line(exc)[:160]
            raise ExportError(f"INPUT {path}: not a readable Parquet file ({reason})") from None
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > MAX_INFLATED_BYTES:
            raise ExportError(f"INPUT {path}: {limit}")
        if meta.num_rows > max_rows:
            raise ExportError(
                f"INPUT {path}: {meta.num_rows:,} rows, more than {MAX_ROWS:,} in one call; "
                "predict them in batches"
            )


def _input_error(path: Path, exc: DataError) -> ExportError:
    """A table reader's error as a predict INPUT error (its ``dataset.path:`` prefix dropped)."""
    text = str(exc).removeprefix("dataset.path: ").removeprefix(f"{path}: ")
    return ExportError(f"INPUT {path}: {text}")


def _read_array(path: Path, io: ModelIO, max_rows: int) -> np.ndarray:
    """An array of rows, every size checked before it is loaded (see :mod:`nnsweep.data.arrays`)."""
    from nnsweep.data.arrays import load_array, preferred_key

    width = len(io.schema.numeric) if io.schema is not None else io.input_width
    if io.schema is not None and io.schema.categorical:
        raise ExportError(
            f"INPUT {path}: this model reads named columns, some of them text; give a CSV or "
            "Parquet file with its feature columns"
        )

    choose = preferred_key(path, NPZ_ROW_KEYS, "name the rows", ExportError)

    array, _ = load_array(
        path,
        choose=choose,
        max_count=max(max_rows, 1) * max(width, 1),
        kinds="buif",
        what="numbers (feature values)",
        error=ExportError,
    )
    if array.ndim not in (1, 2) or array.shape[-1] != width:
        raise ExportError(
            f"INPUT {path}: array of shape {array.shape}; this model reads rows of {width} "
            f"values: ({width},) or (n, {width})"
        )
    rows = np.array(array.reshape(-1, width), dtype=np.float32)  # one copy, out of a memory map
    if io.schema is None and not np.isfinite(rows).all():
        raise ExportError(f"INPUT {path}: array holds NaN or infinite values")
    return rows
