"""A user's table (CSV, Parquet or NPZ): read it, encode its target, split it, make model inputs.

Rules (the README states them too):

* **Files**: ``.csv``/``.tsv`` (optionally ``.gz``; the delimiter ``,`` ``;`` tab or ``|`` is
  detected from the first lines; UTF-8, else Latin-1), ``.parquet``, or ``.npz`` holding ``x``
  and ``y``, or ``x_train``/``y_train`` with an optional ``x_test``/``y_test`` test split.
  Files above :data:`MAX_FILE_BYTES` are refused: the whole table is held in memory.
* **Target** and **splits**: see :mod:`nnsweep.data.splits` (rows with a missing target are
  dropped with a note; classes sorted; a fixed test split; stratified for classification).
* **Columns**: a column is numeric when at least 95 % of its non-missing training values read
  as numbers (quoted numbers included); the rest read as missing. Other columns are categorical.
  A column that pandas wrote as an unnamed row index (``Unnamed: 0`` holding 0, 1, 2, …) is
  dropped. Missing feature values are imputed inside the model (see :mod:`nnsweep.data.features`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.arrays import MAX_TABLE_VALUES, read_npz
from nnsweep.data.features import (
    FeatureSchema,
    Kind,
    fit_array_schema,
    fit_schema,
    require_columns,
    to_inputs,
    to_numeric,
)
from nnsweep.data.npzfile import read_npz_table
from nnsweep.data.splits import (
    NUMERIC_SHARE,
    encode_target,
    holdout_or_folds,
    split_rows,
)
from nnsweep.data.targets import encode_test_target, from_training_rows, table_test_origin
from nnsweep.errors import DataError, first_line
from nnsweep.spec.dataset import Validation, table_format
from nnsweep.tasks import Task

if TYPE_CHECKING:
    import pandas as pd

MAX_FILE_BYTES = 1 << 30
MAX_FEATURES = 10_000  # columns of a CSV/Parquet table (each is read and fitted)
DEFAULT_TEST = 0.2
_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class TableSplits:
    """A table read, encoded and split: model inputs, targets, and what was learnt."""

    x_train: dict[str, Any]
    y_train: np.ndarray
    x_val: dict[str, Any]
    y_val: np.ndarray
    x_test: dict[str, Any]
    y_test: np.ndarray
    task: Task
    class_names: tuple[Any, ...] | None
    schema: FeatureSchema
    target: str | None
    source: str
    fingerprint: str
    notes: tuple[str, ...]
    folds: int | None = None
    unseen_test: dict[str, int] = field(default_factory=dict)
    test_origin: str = ""


def table_kind(path: Path) -> str:
    """``csv``, ``parquet`` or ``npz`` from the file name (``.gz`` allowed after a CSV suffix)."""
    kind = table_format(path)
    if kind is None:
        raise DataError(
            f"dataset.path: {path.name!r} is not a table nnsweep reads; use .csv, .tsv, "
            ".parquet or .npz"
        )
    return kind


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"dataset.path: {path} does not exist; fix the path or --data-path")
    if not path.is_file():
        raise DataError(f"dataset.path: {path} is not a file; give a .csv, .parquet or .npz file")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"dataset.path: {path} is empty; give a file with a header and rows")
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"dataset.path: {path} is {size / 2**30:.1f} GiB; nnsweep holds a table in memory and "
            f"reads at most {MAX_FILE_BYTES / 2**30:.0f} GiB; sample it"
        )


# -- reading --------------------------------------------------------------------------------
def read_frame(path: Path, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV or Parquet file as a frame with stripped string column names.

    ``text_columns`` are read as text, untouched (prediction reads categorical columns so).

    Raises:
        DataError: missing, empty, oversized, binary or malformed file; duplicate column names.
    """
    import pandas as pd

    _check_file(path)
    kind = table_kind(path)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            sep, encoding = _sniff(path)
            frame = pd.read_csv(
                path,
                sep=sep,
                decimal="," if sep == ";" else ".",  # ';' files write 3,5 for 3.5
                encoding=encoding,
                na_values=["?"],
                skipinitialspace=True,
                index_col=False,
                low_memory=False,
                dtype=dict.fromkeys(text_columns, str) or None,
            )
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"dataset.path: {path} holds no columns; give a header and rows") from None
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        reason = first_line(exc)[:160]
        raise DataError(f"dataset.path: {path} is not a readable {kind} file ({reason})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise DataError(f"dataset.path: {path} has two columns named {dupes[0]!r}; rename one")
    if frame.empty:
        raise DataError(f"dataset.path: {path} has a header but no rows")
    return frame


def _sniff(path: Path) -> tuple[str, str]:
    """(delimiter, encoding) of a CSV from its first 64 KiB."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(1 << 16)
    except (OSError, EOFError) as exc:
        raise DataError(f"dataset.path: {path} cannot be read ({exc})") from None
    if b"\x00" in head:
        raise DataError(f"dataset.path: {path} is binary, not a text CSV")
    try:
        text, encoding = head.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the 64 KiB boundary is still UTF-8
        if exc.start >= len(head) - 3:
            text, encoding = head[: exc.start].decode("utf-8-sig"), "utf-8-sig"
        else:
            text, encoding = head.decode("latin-1"), "latin-1"
    if path.suffix.lower() == ".tsv" or path.name.lower().endswith(".tsv.gz"):
        return "\t", encoding
    lines = text.splitlines()[:21]
    lines = lines[:-1] if len(lines) > 1 and len(head) == 1 << 16 else lines
    best, best_width = ",", 1
    for sep in _DELIMITERS:
        try:
            widths = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)}
        except csv.Error:
            continue
        widths.discard(0)
        if len(widths) == 1 and (width := widths.pop()) > best_width:
            best, best_width = sep, width
    return best, encoding


def _drop_saved_index(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    first = frame.columns[0]
    if first.startswith("Unnamed:") or first == "":
        values = frame[first].to_numpy()
        if values.dtype.kind in "iu" and (
            np.array_equal(values, np.arange(len(values)))
            or np.array_equal(values, np.arange(1, len(values) + 1))
        ):
            notes.append(f"column {first!r} dropped: a saved row index")
            return frame.drop(columns=[first])
    return frame


def _column(name: str, columns: list[str], field: str, path: Path) -> str:
    if name in columns:
        return name
    close = [c for c in columns if c.lower() == name.strip().lower()]
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(columns[:12]) + (", …" if len(columns) > 12 else "")
    raise DataError(f"{field}: {name!r} is not a column of {path.name}; {hint}columns: {shown}")


# -- the whole table ------------------------------------------------------------------------
def load_table(
    path: str | Path,
    *,
    target: str | None,
    task: str | None = None,
    features: tuple[str, ...] | None = None,
    validation: Validation = 0.2,
    test: float | None = None,
    seed: int = 0,
    draw_test: bool = True,
) -> TableSplits:
    """Read a user's table and return its encoded, split model inputs (see the module rules).

    ``draw_test=False`` draws no test split (the test rows come from ``dataset.test_path``,
    :mod:`nnsweep.data.testfile`): every row trains or validates.

    Raises:
        DataError: one line naming the ``dataset`` field, the problem and the fix.
    """
    p = Path(path).expanduser()
    if table_kind(p) == "npz":
        return _load_npz(p, target, task, features, validation, test, seed, draw_test)
    if target is None:
        raise DataError(f"dataset.target: name the column of {p.name} to predict")
    notes: list[str] = []
    frame = _drop_saved_index(read_frame(p), notes)
    columns = list(frame.columns)
    target = _column(target, columns, "dataset.target", p)
    if features is None:
        feats = [c for c in columns if c != target]
    else:
        feats = [_column(f, columns, "dataset.features", p) for f in features]
        if target in feats:
            raise DataError(f"dataset.features: {target!r} is the target; drop it from features")
    if not feats:
        raise DataError(f"dataset.features: {p.name} has no column besides the target")
    if len(feats) > MAX_FEATURES:
        raise DataError(
            f"dataset.features: {p.name} has {len(feats):,} feature columns; nnsweep reads at "
            f"most {MAX_FEATURES:,}; list the ones to use in dataset.features"
        )
    with _about(p):
        y, kind, class_names, keep, target_notes = encode_target(frame[target], task, target)
    notes += target_notes
    values = frame.loc[keep, target].reset_index(drop=True)
    frame = frame.loc[keep, feats].reset_index(drop=True)
    rest, _, test_idx = split_rows(
        y, kind, validation=None, test=(test or DEFAULT_TEST) if draw_test else None, seed=seed,
        class_names=class_names,
    )  # fmt: skip
    with _about(p):  # the task, classes and numeric rule: from the training rows alone
        t = from_training_rows(values, rest, test_idx, task, target)
    y, kind, class_names = t.full_y(len(y)), t.task, t.class_names
    rest, test_idx = t.rest, t.test
    notes += t.notes
    keep, held, folds = holdout_or_folds(y[rest], kind, validation, seed, class_names)
    train, val = rest[keep], rest[held]
    train_rows = frame.iloc[train]
    with _about(p):
        schema = fit_schema(train_rows, column_kinds(train_rows))
        x_train, x_val = to_inputs(train_rows, schema), to_inputs(frame.iloc[val], schema)
        x_test = to_inputs(frame.iloc[test_idx], schema)
    return TableSplits(
        x_train=x_train,
        y_train=y[train],
        x_val=x_val,
        y_val=y[val],
        x_test=x_test,
        y_test=y[test_idx],
        task=kind,
        class_names=class_names,
        schema=schema,
        target=target,
        source=str(p),
        fingerprint=file_digest(p),
        notes=(*notes, *schema.notes),
        folds=folds,
        unseen_test=t.unseen,
        test_origin=table_test_origin(p.name, test or DEFAULT_TEST, kind),
    )


@contextmanager
def _about(path: Path) -> Iterator[None]:
    """Prefix a column-level DataError with the file it is about."""
    try:
        yield
    except DataError as exc:
        if str(exc).startswith("dataset"):
            raise
        raise DataError(f"dataset.path: {path.name}: {exc}") from None


def column_kinds(frame: pd.DataFrame) -> dict[str, Kind]:
    """``numeric`` or ``categorical`` for each column of ``frame`` (the training rows)."""
    import pandas as pd

    kinds: dict[str, Kind] = {}
    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype) or (
            pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
        ):
            kinds[name] = "numeric"
        elif pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            kinds[name] = "categorical"
        else:
            numbers, junk, _ = to_numeric(series)
            present = int(np.isfinite(numbers).sum()) + junk
            share = (present - junk) / present if present else 1.0
            kinds[name] = "numeric" if share >= NUMERIC_SHARE else "categorical"
    return kinds


def _load_npz(
    path: Path,
    target: str | None,
    task: str | None,
    features: tuple[str, ...] | None,
    validation: Validation,
    test: float | None,
    seed: int,
    draw_test: bool = True,
) -> TableSplits:
    import pandas as pd

    if target is not None or features is not None:
        field = "dataset.target" if target is not None else "dataset.features"
        raise DataError(f"{field}: an .npz table has arrays x and y, not columns; drop {field}")
    _check_file(path)
    x, y_raw, x_test, y_test_raw = read_npz_table(path)
    if x_test is not None and test is not None:
        raise DataError(
            f"dataset.test: {path.name} brings its own test split (x_test, y_test); drop "
            "dataset.test"
        )
    if x_test is not None and not draw_test:
        raise DataError(
            f"dataset.test_path: {path.name} brings its own test split (x_test, y_test); drop "
            "dataset.test_path, or drop x_test and y_test from the file"
        )
    y_series = pd.Series(y_raw, name="y")
    y, kind, class_names, keep, notes = encode_target(y_series, task, "y")
    x = x[keep]
    rest, _, test_idx = split_rows(
        y, kind, validation=None,
        test=None if x_test is not None or not draw_test else test or DEFAULT_TEST,
        seed=seed, class_names=class_names,
    )  # fmt: skip
    unseen: dict[str, int] = {}
    if x_test is None:  # the task, classes and numeric rule: from the training rows alone
        t = from_training_rows(y_series[keep].reset_index(drop=True), rest, test_idx, task, "y")
        y, kind, class_names = t.full_y(len(y)), t.task, t.class_names
        rest, test_idx = t.rest, t.test
        notes += t.notes
        unseen = t.unseen
    keep, held, folds = holdout_or_folds(y[rest], kind, validation, seed, class_names)
    train, val = rest[keep], rest[held]
    if x_test is not None:
        y_test, known, unseen = encode_test_target(pd.Series(y_test_raw), kind, class_names)
        x_test = x_test[known]
    else:
        x_test, y_test = x[test_idx], y[test_idx]
    schema = fit_array_schema(x[train])
    return TableSplits(
        x_train=to_inputs(x[train], schema),
        y_train=y[train],
        x_val=to_inputs(x[val], schema),
        y_val=y[val],
        x_test=to_inputs(x_test, schema),
        y_test=y_test,
        task=kind,
        class_names=class_names,
        schema=schema,
        target=None,
        source=str(path),
        fingerprint=file_digest(path),
        notes=tuple(notes),
        folds=folds,
        unseen_test=unseen,
        test_origin=(
            f"the x_test/y_test arrays of {path.name}"
            if y_test_raw is not None
            else table_test_origin(path.name, test or DEFAULT_TEST, kind)
        ),
    )


def read_rows(path: Path, schema: FeatureSchema) -> pd.DataFrame | np.ndarray:
    """Raw feature rows to predict, from a CSV/Parquet (any extra column, such as the target,
    is ignored) or an NPZ (``x``, ``x_test`` or its only array).

    Raises:
        DataError: unreadable file, or one that lacks the schema's columns (named).
    """
    if table_kind(path) != "npz":
        frame = read_frame(path, text_columns=tuple(c.name for c in schema.categorical))
        require_columns(frame.columns, schema)
        return frame
    _check_file(path)

    def choose(keys: list[str]) -> list[str]:
        key = next((k for k in ("x", "x_test") if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DataError(f"{path}: holds {', '.join(keys)}; name the rows' array x")
        return [key]

    (rows,) = read_npz(
        path, choose, max_count=MAX_TABLE_VALUES, error=DataError, label=str(path)
    ).values()
    return np.asarray(rows)
