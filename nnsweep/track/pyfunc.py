"""The MLflow pyfunc nnsweep logs: raw table rows (or pixel rows) in, original labels out.

Every model a sweep logs, and so every registered champion, is an MLflow ``python_function``
model whose *loader module* is this module (``loader_module: nnsweep.track.pyfunc``), so
``mlflow models serve``, ``mlflow models predict`` and ``mlflow.pyfunc.load_model`` call
:class:`RowsModel` on rows:

* **signature**: a table's own feature columns, in order: text (categorical) columns
  ``string`` and numeric columns ``Any``; every column must be present, and a missing value
  (null, NaN) is allowed in any of them, since the model imputes it as at training. Numeric
  columns are not declared ``double`` because MLflow refuses to cast int64 to double (nor bool,
  nor a float batch to ``long``) before the model sees the rows: a CSV's integer column, a JSON
  batch whose numbers happen to be whole, or a True/False column would be a 400. The model reads
  them as ``nnsweep predict`` does (integers, floats, booleans, numeric text, missing tokens)
  and answers 400 naming the column when a value is no number. Digit and other
  array models declare no input schema (their signature has outputs only): MLflow enforces a
  tensor's dtype and shape exactly, so it would refuse a CSV of 0–255 integers, a float64
  ``dataframe_split`` or a 28×28 array before the model saw them. The model checks such rows
  itself (784 pixel values per row or 28×28 images, 0–1 or 0–255; other array models: their
  input width) and answers 400 with the reason when they do not fit.
* **output**: one row per input row: ``prediction`` (the original label, or the value for
  regression) and, for classification, ``probability`` (of that label) and ``probabilities``
  (every label's).

The model is the ``.keras`` file at ``data/model.keras``, read in Keras' safe mode, and
``nnsweep_io.json`` beside ``MLmodel`` (its :class:`~nnsweep.data.modelio.ModelIO`); rows are
turned into inputs and outputs into labels by :mod:`nnsweep.data.rowmodel`, the same code as
``nnsweep predict``. No code and no pickle travel with the model: the serving process imports
this module from the installed nnsweep, and ``nnsweep predict models:/…`` accepts a model
only if this module (or MLflow's Keras flavour) is its loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.modelio import ModelIO
from nnsweep.data.rowmodel import (
    LoadedModel,
    answers,
    load_keras,
    pixel_rows,
    row_inputs,
    to_mnist_polarity,
)
from nnsweep.errors import DataError, ExportError, first_line

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import Model, ModelSignature

LOADER_MODULE = __name__  # MLflow imports this module to load the model (MLmodel)
KERAS_FILE = "model.keras"
DATA_DIR = "data"
PYFUNC_KERAS_FILE = f"{DATA_DIR}/{KERAS_FILE}"  # where the loader finds it, as mlflow.keras did
IO_FILE = "nnsweep_io.json"  # beside MLmodel: the model's ModelIO


class RowsModel:
    """The pyfunc model: rows in, a frame of predictions out (see the module docstring)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Predict every row of ``model_input`` (a frame, or an array for array models).

        Raises:
            MlflowException: rows the model cannot read (the server answers 400), naming why.
        """
        try:
            return predict_frame(self.loaded, model_input)
        except DataError as exc:
            from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> RowsModel:
    """MLflow's loader-module entry point: ``data_path`` is the model's ``data/model.keras``."""
    keras_file = Path(data_path)
    contract = read_contract(keras_file.parent.parent / IO_FILE)
    return RowsModel(load_keras(keras_file, str(keras_file), contract))


def read_contract(path: Path) -> ModelIO:
    """The :class:`ModelIO` in a logged model's ``nnsweep_io.json``.

    Raises:
        ExportError: the file is missing, unreadable or malformed.
    """
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = first_line(exc)[:200]
        raise ExportError(f"{path}: not a readable nnsweep model file ({reason})") from None
    return ModelIO.from_dict(data, str(path))


def predict_frame(loaded: LoadedModel, rows: Any) -> pd.DataFrame:
    """Rows → a frame with ``prediction`` (and ``probability``, ``probabilities``).

    Raises:
        DataError: rows the model cannot read.
    """
    import pandas as pd

    contract = loaded.io
    if contract.is_digits:
        images, _ = to_mnist_polarity(pixel_rows(_numbers(rows)), "auto")
        inputs: Any = images.reshape(len(images), -1)
    else:
        inputs = row_inputs(rows if contract.schema is not None else _numbers(rows), contract)
    labels, probs, every = answers(contract, loaded(inputs))
    out: dict[str, Any] = {"prediction": labels}
    if probs is not None:
        out["probability"] = probs
        out["probabilities"] = every
    return pd.DataFrame(out)


def _numbers(rows: Any) -> np.ndarray:
    """An array model's rows as an array (a frame's values, in column order)."""
    if hasattr(rows, "to_numpy"):
        return rows.to_numpy()
    return np.asarray(rows)


# -- what the logged model declares ------------------------------------------------------------
def signature(contract: ModelIO) -> ModelSignature:
    """The model's MLflow signature: the table's columns with their types (array models: no
    input schema, see the module's docstring); outputs as :func:`predict_frame` gives them."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType, Map

    inputs = None
    if contract.schema is not None:
        inputs = Schema(
            [
                ColSpec(AnyType() if c.kind == "numeric" else DataType.string, c.name)
                for c in contract.schema.columns
            ]
        )
    outputs: list[Any] = [ColSpec(_label_type(contract), "prediction")]
    if contract.task.is_classification:
        outputs += [
            ColSpec(DataType.double, "probability"),
            ColSpec(Map(DataType.double), "probabilities"),
        ]
    return ModelSignature(inputs=inputs, outputs=Schema(outputs))


def _label_type(contract: ModelIO) -> Any:
    from mlflow.types import DataType

    if not contract.task.is_classification:
        return DataType.double
    labels = contract.labels
    if all(isinstance(v, bool) for v in labels):
        return DataType.boolean
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return DataType.long
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
        return DataType.double
    return DataType.string


def raw_example(contract: ModelIO, inputs: Any) -> Any:
    """The model-input example (a table's input dict, or an array) as raw rows: a frame with
    the table's columns (missing numbers as the training median), or the array itself."""
    import pandas as pd

    if contract.schema is None or not isinstance(inputs, dict):
        return np.asarray(inputs, dtype=np.float32)
    columns: dict[str, Any] = {}
    numeric = contract.schema.numeric
    for column in contract.schema.columns:
        if column.kind == "numeric":
            values = np.asarray(inputs[column.input], dtype=np.float64)[:, numeric.index(column)]
            columns[column.name] = np.where(np.isfinite(values), values, column.median)
        else:
            values = np.asarray(_as_numpy(inputs[column.input])).reshape(-1)
            columns[column.name] = [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
            ]
    return pd.DataFrame(columns)


def _as_numpy(value: Any) -> Any:
    return value.numpy() if hasattr(value, "numpy") else value


def save(
    path: Path,
    keras_file: Path,
    contract: ModelIO,
    *,
    example: Any,
    mlflow_model: Model,
    pip_requirements: list[str],
) -> None:
    """Write the pyfunc model into the new folder ``path``: ``MLmodel`` (loader module, the
    signature, the input example), ``data/model.keras`` and ``nnsweep_io.json``."""
    import json

    import mlflow.pyfunc

    mlflow.pyfunc.save_model(
        str(path),
        loader_module=LOADER_MODULE,
        data_path=str(keras_file),
        mlflow_model=mlflow_model,
        signature=signature(contract),
        input_example=example,
        pip_requirements=pip_requirements,
    )
    (path / IO_FILE).write_text(json.dumps(contract.as_dict()), encoding="utf-8")
