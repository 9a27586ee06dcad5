"""The sweep file's ``dataset`` section: a named dataset, or a table with its target and splits.

Only the fields and their rules live here; :class:`nnsweep.spec.config.DatasetSpec` adds the strict
section behaviour every part of the sweep file shares. Errors are one line naming the field,
e.g. ``dataset.target: name the column of 'houses.csv' to predict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nnsweep.spec.space import short_repr
from nnsweep.tasks import DATASETS, DIGIT_DATASETS, NAMED_TASKS, TASKS, TEXT_DATASETS

_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet",
                   ".pq": "parquet", ".npz": "npz"}  # fmt: skip


def table_format(path: Path) -> str | None:
    """``csv``, ``parquet`` or ``npz`` from a table's file name (``.gz`` after a CSV suffix)."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) > 1 and suffixes[-1] == ".gz" and _TABLE_SUFFIXES.get(suffixes[-2]) == "csv":
        return "csv"
    return _TABLE_SUFFIXES.get(suffixes[-1]) if suffixes else None


MIN_FOLDS, MAX_FOLDS = 2, 20
AUTO: Final = "auto"
AUTO_FOLDS = 5
"""Folds of ``validation: auto`` on a small table."""
AUTO_MIN_FOLDS = 3
"""``validation: auto`` on a small table whose smallest class has fewer than
:data:`AUTO_FOLDS` training rows takes as many folds as that class has rows, down to this;
below it, the holdout (a 20 % holdout would leave such a class one validation row or none)."""
AUTO_CV_BELOW = 2_000
"""``validation: auto`` cross-validates a training part of fewer rows than this; larger ones
(and the digit datasets, whose default is a 0.1 holdout) get a holdout of
:data:`AUTO_HOLDOUT`. Below it a 20 % holdout has under 400 rows, where one row moves accuracy
by more than 0.25 points and the winner of a sweep is largely chance."""
AUTO_HOLDOUT = 0.2


class Folds(BaseModel):
    """``validation: {folds: K}``: K-fold cross-validation of the training part (all rows but
    the test split), stratified for classes and seeded with the sweep's seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    folds: int = Field(ge=MIN_FOLDS, le=MAX_FOLDS, strict=True)


Validation = float | Folds | Literal["auto"]
"""A holdout fraction, K folds, or ``auto`` (folds on a small table, else a holdout)."""

_VALIDATION_FIX = (
    "give a holdout fraction such as 0.2, {folds: K} for K-fold cross-validation "
    f"(K from {MIN_FOLDS} to {MAX_FOLDS}), or auto"
)


def parse_validation(raw: Any) -> Validation:
    """The ``validation`` entry as written → a fraction, :class:`Folds` or ``"auto"``.

    Raises:
        ValueError: one line with the rule, the value and the fix.
    """
    if isinstance(raw, Folds) or raw == AUTO:
        return cast(Validation, raw)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if not (0.0 < raw < 0.5) or raw != raw:
            raise ValueError(
                f"a holdout fraction must be > 0 and < 0.5, but got {short_repr(raw)}; "
                + _VALIDATION_FIX
            )
        return float(raw)
    if isinstance(raw, dict):
        if set(raw) != {"folds"}:
            extra = sorted(set(raw) - {"folds"}, key=str)
            what = f"unknown key {short_repr(extra[0])}" if extra else "folds is missing"
            raise ValueError(f"{what}; {_VALIDATION_FIX}")
        try:
            return Folds.model_validate(raw)
        except ValidationError:
            raise ValueError(
                f"folds must be a whole number from {MIN_FOLDS} to {MAX_FOLDS}, but got "
                f"{short_repr(raw['folds'])}; {_VALIDATION_FIX}"
            ) from None
    raise ValueError(f"{short_repr(raw)} is not a validation setting; {_VALIDATION_FIX}")


def describe_validation(validation: Validation) -> str:
    """``"5 folds"``, ``"holdout 0.2"`` or ``"auto"``: a setting as messages and stores show it."""
    if isinstance(validation, Folds):
        return f"{validation.folds} folds"
    return AUTO if validation == AUTO else f"holdout {validation:g}"


def known_task(fields: DatasetFields) -> str | None:
    """The task of a ``dataset`` section before loading: a named dataset's own, or
    ``task`` as given; ``None`` when it is inferred from the table."""
    return fields.task or NAMED_TASKS.get(fields.name or "")


class DatasetFields(BaseModel):
    """The fields of the ``dataset`` section and the rules between them."""

    name: str | None = None
    path: Path | None = None
    target: str | None = Field(None, min_length=1, max_length=1000, validate_default=True)
    task: str | None = None
    validation: Validation = 0.1
    test: float | None = Field(None, gt=0.0, lt=0.5)
    test_path: Path | None = None
    features: tuple[Annotated[str, Field(min_length=1, max_length=1000)], ...] | None = Field(
        None, min_length=1, max_length=100_000
    )
    num_words: int | None = Field(None, ge=10, le=20_000)

    @model_validator(mode="before")
    @classmethod
    def _default_validation(cls, data: Any) -> Any:
        # a table (and a Keras dataset) defaults to auto: K folds on a small training part, a
        # 0.2 holdout on a larger one (see AUTO_CV_BELOW); the digit datasets keep their 0.1
        if isinstance(data, dict) and "validation" not in data:
            if data.get("name") not in DIGIT_DATASETS:
                return {**data, "validation": AUTO}
        return data

    @field_validator("validation", mode="before")
    @classmethod
    def _parse_validation(cls, v: Any) -> Validation:
        return parse_validation(v)

    @field_validator("name")
    @classmethod
    def _known_name(cls, v: str | None) -> str | None:
        if v is not None and v not in DATASETS:
            raise ValueError(
                f"{short_repr(v)} is not one of {', '.join(DATASETS)}; or leave name out and "
                "give path and target for your own table"
            )
        return v

    @field_validator("path")
    @classmethod
    def _readable_table(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is not None and info.data.get("name") is None and table_format(v) is None:
            raise ValueError(
                f"{short_repr(v.name)} is not a table nnsweep reads; use .csv, .tsv, .parquet "
                "or .npz, or give dataset.name for a digits folder or a Keras .npz"
            )
        return v

    @field_validator("target")
    @classmethod
    def _target_for_tables(cls, v: str | None, info: ValidationInfo) -> str | None:
        name, path = info.data.get("name"), info.data.get("path")
        if name is not None and v is not None:
            raise ValueError(f"{name} has fixed columns; drop target, or drop name to read a table")
        if name is None and path is not None:
            if table_format(path) == "npz" and v is not None:
                raise ValueError("an .npz table has arrays x and y, not columns; drop target")
            if table_format(path) in ("csv", "parquet") and v is None:
                raise ValueError(f"name the column of {short_repr(path.name)} to predict")
        return v

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and v not in TASKS:
            raise ValueError(f"{short_repr(v)} is not one of {', '.join(TASKS)}")
        natural = NAMED_TASKS.get(info.data.get("name") or "")
        if v is not None and natural is not None and v != natural:
            raise ValueError(f"{info.data['name']} is a {natural} task, not {v}; drop task")
        return v

    @field_validator("test")
    @classmethod
    def _test_for_tables(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("name") is not None:
            raise ValueError(f"{info.data['name']} has a fixed test split; drop test")
        return v

    @field_validator("test_path")
    @classmethod
    def _test_file(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        # a held-out test table of the user's: then no test split is drawn from path
        if v is None:
            return v
        name, path = info.data.get("name"), info.data.get("path")
        if name is not None:
            raise ValueError(f"{name} has a fixed test split; drop test_path")
        if info.data.get("test") is not None:
            raise ValueError("give test (a share of path to hold out) or test_path, not both")
        kind = table_format(v)
        if kind is None:
            raise ValueError(
                f"{short_repr(v.name)} is not a table nnsweep reads; use .csv, .tsv, .parquet "
                "or .npz, the same kind as path"
            )
        if path is not None and (kind == "npz") != (table_format(path) == "npz"):
            raise ValueError(
                f"{short_repr(v.name)} and path {short_repr(path.name)} are different kinds of "
                "table; give the test rows in the same kind of file as path"
            )
        return v

    @field_validator("features")
    @classmethod
    def _features_for_columns(
        cls, v: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if v is None:
            return v
        name, path = info.data.get("name"), info.data.get("path")
        if name is not None or (path is not None and table_format(path) == "npz"):
            raise ValueError(
                f"{name or 'an .npz table'} has no named columns to choose; drop features"
            )
        if len(set(v)) < len(v):
            twice = next(f for f in v if v.count(f) > 1)
            raise ValueError(f"{short_repr(twice)} is listed twice; list each column once")
        return v

    @field_validator("num_words")
    @classmethod
    def _words_for_text(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("name") not in TEXT_DATASETS:
            raise ValueError("only imdb and reuters have words; drop num_words")
        return v

    @model_validator(mode="after")
    def _name_or_path(self) -> DatasetFields:
        if self.name is None and self.path is None:
            raise ValueError(
                "give name (one of " + ", ".join(DATASETS) + ") or path and target of your "
                "own table"
            )
        return self
