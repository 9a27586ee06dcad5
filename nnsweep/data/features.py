"""Feature preprocessing that lives inside the Keras model, so ``model.keras`` takes raw rows.

A :class:`FeatureSchema` is fitted on the *training split only* and becomes the model's input
block (:func:`nnsweep.data.head.build_head`), made of stock Keras layers and ``keras.ops``
only, so a saved model loads in plain Keras with ``safe_mode=True`` and no custom classes:

* **numeric** columns share one ``float32`` input named ``numeric`` (columns in schema order).
  Missing or non-finite values are replaced by the column's training median
  (``ops.where(ops.isfinite(x), x, median)``), then standardised with the training mean and
  standard deviation (a constant column gets standard deviation 1, so it maps to 0, never NaN),
  then clipped to ±1e6 standard deviations as a guard against overflow.
* **categorical** columns get one ``string`` input each, named after the column (sanitised),
  one-hot encoded by ``StringLookup`` with the training vocabulary: categories seen in at least
  :data:`MIN_CATEGORY_COUNT` training rows, the :data:`MAX_CATEGORIES` most frequent. Missing
  values are the category ``(missing)``; anything else (unseen at training) falls in the
  out-of-vocabulary slot.

Raw values are read the same way at fit, evaluation and prediction (:func:`to_inputs`):
numbers may arrive as text (``" 3.5"``, ``"1,234"``, ``"True"`` as 1); ``?``, ``NA``,
``null``, ``-`` and empty cells are missing; text that is not a number in a numeric column
counts as missing.
Columns with no usable training value are dropped (see :func:`fit_schema`'s notes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from nnsweep.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

NUMERIC_INPUT = "numeric"
MISSING = "(missing)"
MAX_CATEGORIES = 100
MIN_CATEGORY_COUNT = 2
CLIP = 1e6
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 33)  # 32 bins between the training quantiles
# Text read as missing in numeric columns (compared lower-cased, after stripping blanks).
MISSING_TOKENS = frozenset({"", "?", "na", "n/a", "nan", "null", "none", "-", "--", "missing"})
_BOOLEANS = {"true": 1.0, "false": 0.0}  # a boolean column's values, as text
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Column:
    """One feature column: its file name, kind, model input and training statistics."""

    name: str
    kind: Kind
    input: str
    median: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    vocabulary: tuple[str, ...] = ()
    # training quantiles (distinct, ascending) of a numeric column: the knots of the quantile
    # transform and the piecewise-linear embedding; not part of as_dict (the card stays small)
    quantiles: tuple[float, ...] = field(default=(), compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "input": self.input}
        if self.kind == "numeric":
            out.update(median=self.median, mean=self.mean, std=self.std)
        else:
            out["vocabulary"] = list(self.vocabulary)
        return out


@dataclass(frozen=True)
class FeatureSchema:
    """The feature columns a model reads, in order, with what was learnt from the training split."""

    columns: tuple[Column, ...]
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def numeric(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind == "numeric")

    @property
    def categorical(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind == "categorical")

    @property
    def input_names(self) -> dict[str, str]:
        """Column name → model input name (all numeric columns share ``numeric``)."""
        return {c.name: c.input for c in self.columns}

    @property
    def width(self) -> int:
        """Values the first hidden layer sees: one per numeric column, a one-hot per category
        (plus the out-of-vocabulary slot)."""
        return len(self.numeric) + sum(len(c.vocabulary) + 1 for c in self.categorical)

    def describe(self) -> str:
        """One line, e.g. ``12 numeric, 2 categorical columns (34 model inputs)``."""
        return (
            f"{len(self.numeric)} numeric, {len(self.categorical)} categorical columns "
            f"({self.width} model inputs)"
        )

    def as_dict(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.columns]

    @classmethod
    def from_dict(cls, rows: Iterable[Mapping[str, Any]]) -> FeatureSchema:
        """Inverse of :meth:`as_dict` (as a card or an MLflow run stores it)."""
        columns = []
        for row in rows:
            extra = (
                {"median": row["median"], "mean": row["mean"], "std": row["std"]}
                if row["kind"] == "numeric"
                else {"vocabulary": tuple(row["vocabulary"])}
            )
            columns.append(Column(name=row["name"], kind=row["kind"], input=row["input"], **extra))
        return cls(tuple(columns))


# -- reading raw values ------------------------------------------------------------------------
def to_numeric(values: pd.Series, precise: bool = False) -> tuple[np.ndarray, int, str | None]:
    """Raw values → float32 (float64 if ``precise``) with NaN for missing, plus how many were
    text that is no number (also NaN) and the first such text."""
    import pandas as pd

    dtype = np.float64 if precise else np.float32
    kind = values.dtype
    if pd.api.types.is_bool_dtype(kind):
        return values.to_numpy(np.float64, na_value=np.nan).astype(dtype), 0, None
    if pd.api.types.is_datetime64_any_dtype(kind) or isinstance(kind, pd.PeriodDtype):
        raise DataError(f"column {values.name!r} holds dates; turn them into numbers first")
    if pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_complex_dtype(kind):
        with np.errstate(over="ignore"):  # beyond float32: inf, which the model treats as missing
            return values.to_numpy(np.float64, na_value=np.nan).astype(dtype), 0, None
    text = _text(values)
    missing = text.isna() | text.str.lower().isin(MISSING_TOKENS)
    text = text.mask(missing)
    parsed = pd.to_numeric(text, errors="coerce")
    failed = parsed.isna() & ~missing
    if failed.any():
        comma = failed & text.str.fullmatch(_THOUSANDS.pattern).fillna(False).astype(bool)
        if comma.any():
            parsed[comma] = pd.to_numeric(text[comma].str.replace(",", ""), errors="coerce")
            failed = parsed.isna() & ~missing
    if failed.any():  # booleans as text (JSON strings; a True/False column with gaps is object)
        truth = text[failed].str.strip().str.lower().map(_BOOLEANS)
        parsed[truth.index] = truth.astype(float)
        failed = parsed.isna() & ~missing
    example = str(text[failed].iloc[0]) if failed.any() else None
    with np.errstate(over="ignore"):
        out = parsed.to_numpy(np.float64, na_value=np.nan).astype(dtype)
    return out, int(failed.sum()), example


def to_category(values: pd.Series) -> np.ndarray:
    """Raw values → object array of stripped strings, ``(missing)`` for missing ones.

    Whole floats read as integers (``3.0`` → ``"3"``) so a column typed differently at
    prediction time maps to the same categories.
    """
    import pandas as pd

    if pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(np.float64, na_value=np.nan)
        whole = np.isfinite(floats) & (np.mod(floats, 1) == 0) & (np.abs(floats) < 2**53)
        out = np.where(np.isnan(floats), MISSING, floats.astype(str)).astype(object)
        out[whole] = floats[whole].astype(np.int64).astype(str)
        return out
    text = _text(values)
    text = text.mask(text.isna() | (text == ""), MISSING)
    return text.to_numpy(dtype=object)


def _text(values: pd.Series) -> pd.Series:
    """Values as stripped strings (missing stays missing); lists or mappings are refused."""
    import pandas as pd

    if values.dtype == object:
        sample = values.dropna()
        bad = sample[sample.map(lambda v: isinstance(v, list | tuple | dict | set | np.ndarray))]
        if len(bad):
            raise DataError(
                f"column {values.name!r} holds nested values (lists or arrays); nnsweep reads "
                "numbers and text; flatten or drop that column"
            )
        values = values.map(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v,
            na_action="ignore",
        )
    return values.astype(pd.StringDtype()).str.strip()


# -- fitting the schema ----------------------------------------------------------------------
def input_name(column: str, taken: set[str]) -> str:
    """A Keras-safe, unique input name for ``column`` (recorded in the schema)."""
    base = _UNSAFE.sub("_", column.strip())[:60].strip("_") or "column"
    if not base[0].isalpha():
        base = f"c_{base}"
    name, i = base, 2
    while name.lower() in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name.lower())
    return name


def fit_schema(frame: pd.DataFrame, kinds: Mapping[str, Kind]) -> FeatureSchema:
    """Learn the schema of ``kinds``' columns from ``frame``, the training rows only.

    Dropped, with a note: a numeric column with no value in the training rows, and a
    categorical column with no category seen in two training rows (an identifier).
    Also noted: imputed columns (with the number of missing training rows) and text read as
    missing in numeric columns.

    Raises:
        DataError: no feature column left.
    """
    notes: list[str] = []
    imputed: list[str] = []
    columns: list[Column] = []
    taken = {NUMERIC_INPUT}
    for name, kind in kinds.items():
        if kind == "numeric":
            values, junk, example = to_numeric(frame[name])
            if junk:
                notes.append(
                    f"column {name!r}: {junk} training row(s) hold text that is not a number "
                    f"(e.g. {example!r}); read as missing"
                )
            column = _numeric_column(name, values)
            if column is None:
                notes.append(f"column {name!r} dropped: no numeric value in the training rows")
                continue
            n_missing = int((~np.isfinite(values)).sum())
            if n_missing:
                imputed.append(f"{name} ({n_missing} rows)")
        else:
            column = _categorical_column(name, to_category(frame[name]), taken, notes)
            if column is None:
                continue
        columns.append(column)
    if imputed:
        notes.append("missing values set to the training median: " + ", ".join(imputed))
    if not columns:
        raise DataError(
            "dataset: no feature column left to train on (every column was dropped or is the "
            "target); check dataset.features and the file"
        )
    return FeatureSchema(tuple(columns), tuple(notes))


def fit_array_schema(x: np.ndarray, prefix: str = "x") -> FeatureSchema:
    """The schema of a numeric matrix's columns (named ``x0``, ``x1``, …), from training rows.

    Raises:
        DataError: no column holds a finite value.
    """
    values = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    columns = []
    for j in range(values.shape[1]):
        column = _numeric_column(f"{prefix}{j}", values[:, j])
        # a column with no finite training value keeps median 0 so positions stay aligned
        columns.append(column or Column(f"{prefix}{j}", "numeric", NUMERIC_INPUT))
    if not bool(np.isfinite(values).any()):
        raise DataError("dataset: no finite value in any feature column of the training rows")
    return FeatureSchema(tuple(columns))


def _numeric_column(name: str, values: np.ndarray) -> Column | None:
    finite = np.isfinite(values)
    if not finite.any():
        return None
    median = float(np.median(values[finite]))
    filled = np.where(finite, values, np.float32(median)).astype(np.float64)
    mean, std = float(filled.mean()), float(filled.std())
    if not np.isfinite(std) or std < 1e-12 or std > 1e37:
        std = 1.0  # constant column (or beyond float32): it becomes 0, never NaN
    knots = np.unique(np.quantile(values[finite].astype(np.float64), QUANTILE_LEVELS))
    quantiles = tuple(float(q) for q in knots.astype(np.float32))
    return Column(
        name, "numeric", NUMERIC_INPUT, median=median, mean=mean, std=std, quantiles=quantiles
    )


def _categorical_column(
    name: str, values: np.ndarray, taken: set[str], notes: list[str]
) -> Column | None:
    import pandas as pd

    counts = pd.Series(values, dtype=object).value_counts(sort=False)
    counts = counts[(counts >= MIN_CATEGORY_COUNT) & (counts.index != "[UNK]")]
    if counts.empty:
        notes.append(
            f"column {name!r} dropped: no category appears in {MIN_CATEGORY_COUNT} training rows "
            "(an identifier or free text?)"
        )
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if len(ranked) > MAX_CATEGORIES:
        notes.append(
            f"column {name!r}: kept the {MAX_CATEGORIES} most frequent of {len(ranked)} "
            "categories; the others share the unknown slot"
        )
    vocabulary = tuple(str(k) for k, _ in ranked[:MAX_CATEGORIES])
    return Column(name, "categorical", input_name(name, taken), vocabulary=vocabulary)


# -- model inputs ------------------------------------------------------------------------------
def to_inputs(rows: pd.DataFrame | np.ndarray, schema: FeatureSchema) -> dict[str, Any]:
    """Raw rows → the model's input dict (numeric matrix and one string tensor per category).

    ``rows`` is a frame holding (at least) the schema's columns, any extra column (such as the
    target) being ignored, or for an all-numeric schema a 2-D array with its columns in order.

    Raises:
        DataError: columns missing from ``rows`` (named), or an array of the wrong width.
    """
    if isinstance(rows, np.ndarray):
        return _array_inputs(rows, schema)
    require_columns(rows.columns, schema)
    inputs: dict[str, Any] = {}
    if schema.numeric:
        matrix = np.empty((len(rows), len(schema.numeric)), dtype=np.float32)
        for j, column in enumerate(schema.numeric):
            matrix[:, j] = to_numeric(rows[column.name])[0]
        inputs[NUMERIC_INPUT] = matrix
    if schema.categorical:
        import tensorflow as tf

        for column in schema.categorical:
            values = to_category(rows[column.name]).reshape(-1, 1)
            inputs[column.input] = tf.constant(values, dtype=tf.string)
    return inputs


def require_columns(columns: Iterable[Any], schema: FeatureSchema) -> None:
    """Refuse rows that lack any of the schema's columns.

    Raises:
        DataError: naming the missing columns (the first five) and the ones expected.
    """
    have = {str(c) for c in columns}
    missing = [c for c in schema.names if c not in have]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5]) + (", …" if len(missing) > 5 else "")
        expected = ", ".join(schema.names[:8]) + (", …" if len(schema.names) > 8 else "")
        raise DataError(
            f"rows lack {len(missing)} feature column(s) the model reads: {shown}; give every "
            f"column of {expected}"
        )


def _array_inputs(rows: np.ndarray, schema: FeatureSchema) -> dict[str, Any]:
    if schema.categorical:
        raise DataError("rows: this model reads named columns; give a CSV or Parquet file")
    if rows.dtype.kind not in "iufb" or rows.ndim < 1:
        raise DataError(f"rows: an array of {rows.dtype} values; expected numbers")
    width = int(np.prod(rows.shape[1:]))  # not -1: numpy cannot infer a width for 0 rows
    matrix = rows.reshape(1, -1) if rows.ndim == 1 else rows.reshape(len(rows), width)
    if matrix.shape[1] != len(schema.numeric):
        raise DataError(
            f"rows: {matrix.shape[1]} values per row, but the model reads "
            f"{len(schema.numeric)} columns"
        )
    with np.errstate(over="ignore"):
        return {NUMERIC_INPUT: np.ascontiguousarray(matrix, dtype=np.float32)}


# -- splitting and joining input dicts -----------------------------------------------------------
def n_rows(x: Mapping[str, Any] | np.ndarray) -> int:
    """Rows of an input array or dict."""
    if isinstance(x, Mapping):
        return int(next(iter(x.values())).shape[0])
    return len(x)


def take_rows(x: Mapping[str, Any] | np.ndarray, index: Sequence[int] | np.ndarray) -> Any:
    """The rows ``index`` of an input array or dict."""
    if not isinstance(x, Mapping):
        return np.ascontiguousarray(x[np.asarray(index)])
    out: dict[str, Any] = {}
    for key, value in x.items():
        if isinstance(value, np.ndarray):
            out[key] = np.ascontiguousarray(value[np.asarray(index)])
        else:
            import tensorflow as tf

            out[key] = tf.gather(value, np.asarray(index, dtype=np.int64))
    return out


def concat_rows(parts: Sequence[Mapping[str, Any] | np.ndarray]) -> Any:
    """Input arrays or dicts stacked row-wise (e.g. train + validation for a refit)."""
    if not isinstance(parts[0], Mapping):
        return np.concatenate(cast(Sequence[np.ndarray], parts))
    out: dict[str, Any] = {}
    for key, first in parts[0].items():
        values = [cast(Mapping[str, Any], p)[key] for p in parts]
        if isinstance(first, np.ndarray):
            out[key] = np.concatenate(values)
        else:
            import tensorflow as tf

            out[key] = tf.concat(values, axis=0)
    return out
