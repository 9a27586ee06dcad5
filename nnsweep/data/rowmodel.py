"""A trained Keras model with its contract, called on raw rows.

The path ``nnsweep predict``, the MLflow pyfunc (:mod:`nnsweep.track.pyfunc`) and the card's
latency figures share.

* :func:`load_keras` reads a ``.keras`` file in Keras' safe mode (no lambda or pickled code
  runs) and checks it against its :class:`~nnsweep.data.modelio.ModelIO`;
* :func:`row_inputs` turns raw rows (a frame with the table's columns, or an array of the
  model's width) into what the model takes, :func:`pixel_rows` and :func:`to_mnist_polarity`
  do the same for digits;
* :func:`answers` turns the model's output back into original labels and probabilities.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.modelio import DIGIT_WIDTH, ModelIO, digits_io
from nnsweep.errors import DataError, ExportError, first_line
from nnsweep.tasks import DIGITS

if TYPE_CHECKING:
    import pandas as pd

SIDE = 28
PREDICT_BATCH = 256
# Up to this many rows go through one predict_on_batch call: Keras' predict() builds a data
# pipeline per call (~150 ms for one row on a busy 2-core machine, against under 1 ms).
ON_BATCH_ROWS = 4096


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model loaded for prediction, with its contract; call it on model inputs."""

    net: Any
    io: ModelIO
    label: str

    def __call__(self, x: Any) -> np.ndarray:
        from nnsweep.data.features import n_rows

        if n_rows(x) <= ON_BATCH_ROWS:
            return np.asarray(self.net.predict_on_batch(x))
        # Keras' progress bar would land on stdout and corrupt --json / --csv output.
        with contextlib.redirect_stdout(io.StringIO()):
            return np.asarray(self.net.predict(x, batch_size=PREDICT_BATCH, verbose=0))


def load_keras(path: Path, label: str, contract: ModelIO | None = None) -> LoadedModel:
    """Load a ``.keras`` file in Keras' safe mode and check it against ``contract``; with no
    contract, it must be a digit model (784 pixels → 10 classes).

    Raises:
        ExportError: Keras cannot load it safely, or its shape is not what the contract (or,
            with none, a digit model) says, naming ``label``.
    """
    import keras

    try:
        net = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        reason = first_line(exc)[:200]
        raise ExportError(f"MODEL {label}: Keras cannot load it ({reason})") from None
    if contract is not None:
        contract.check_model(net, f"MODEL {label}")
        return LoadedModel(net, contract, label)
    if len(net.inputs) != 1:
        raise ExportError(
            f"MODEL {label}: takes {len(net.inputs)} named inputs and has no model card; give "
            "the `nnsweep export` folder, whose model_card.json names its columns"
        )
    shapes = (tuple(net.input_shape)[1:], tuple(net.output_shape)[1:])
    if shapes != ((DIGIT_WIDTH,), (DIGITS.output_units,)):
        raise ExportError(
            f"MODEL {label}: maps {shapes[0]} to {shapes[1]}, not 784 pixels to 10 digits, and "
            "has no model card; give the `nnsweep export` folder or a model exported by nnsweep"
        )
    return LoadedModel(net, digits_io(), label)


def row_inputs(rows: pd.DataFrame | np.ndarray, contract: ModelIO) -> Any:
    """Raw rows → the inputs of ``contract``'s model (not a digit model: see :func:`pixel_rows`).

    A table's model reads a frame with its columns (extra columns ignored) or, if all its
    columns are numeric, an array with them in order; an array dataset's model reads rows of
    its input width.

    Raises:
        DataError: missing columns (named), or an array of the wrong width or with NaN.
    """
    from nnsweep.data.features import to_inputs

    if contract.schema is not None:
        return to_inputs(rows, contract.schema)
    values = np.asarray(rows)
    width = contract.input_width
    if values.dtype.kind not in "iufb" or values.size % width or values.ndim > 2:
        raise DataError(
            f"rows: expected {width} numbers per row, got shape {values.shape} ({values.dtype})"
        )
    matrix = np.array(values.reshape(-1, width), dtype=np.float32)
    if not np.isfinite(matrix).all():
        raise DataError("rows: hold NaN or infinite values")
    return matrix


def pixel_rows(values: Any) -> np.ndarray:
    """Digit rows (``(n, 784)``, ``(n, 28, 28)`` or one image) as float32 ``(n, 28, 28)`` in
    [0, 1]: integer values, and any batch whose maximum is above 1, are read as 0–255.

    Raises:
        DataError: not numbers, the wrong shape, NaN, or values outside 0–255.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "uif" or array.size == 0 or array.size % (SIDE * SIDE):
        raise DataError(
            f"rows: {array.dtype} values of shape {array.shape}; expected 784 pixel values "
            "per row (28x28 images, row-major)"
        )
    images = np.array(array.reshape(-1, SIDE, SIDE), dtype=np.float32)
    if not np.isfinite(images).all():
        raise DataError("rows: pixel values hold NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 255:
        raise DataError(f"rows: pixel values run from {low:g} to {high:g}; expected 0-255 or 0-1")
    if array.dtype.kind in "ui" or high > 1.0:
        images /= np.float32(255.0)
    return images


def to_mnist_polarity(images: np.ndarray, background: str) -> tuple[np.ndarray, np.ndarray]:
    """Invert the images that are dark-on-light, so every digit is light on dark as in MNIST.

    ``background``: ``"dark"`` never inverts, ``"light"`` always does, ``"auto"`` inverts an
    image whose border is mostly light.

    Returns:
        The images, and a boolean per image: was it inverted.
    """
    if background == "dark":
        flip = np.zeros(len(images), dtype=bool)
    elif background == "light":
        flip = np.ones(len(images), dtype=bool)
    else:
        border = np.concatenate(
            [images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]], axis=1
        )
        flip = border.mean(axis=1) > 0.5
    out = np.where(flip[:, None, None], 1.0 - images, images).astype(np.float32)
    return out, flip


def every_probability(contract: ModelIO, output: np.ndarray) -> list[dict[str, float]] | None:
    """Each row's probability of every label (by the label's text); None for regression."""
    if not contract.task.is_classification:
        return None
    out = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
    if contract.task.kind == "binary":
        out = np.concatenate([1.0 - out, out], axis=1)
    names = [str(label) for label in contract.labels]
    return [dict(zip(names, (float(p) for p in row), strict=True)) for row in out]


def answers(
    contract: ModelIO, output: np.ndarray
) -> tuple[list[Any], list[float] | None, list[dict[str, float]] | None]:
    """Model output → (original labels or values, the predicted labels' probabilities, every
    label's probability); the last two are None for regression."""
    labels, probs = contract.task.labelled(
        output, contract.labels if contract.task.is_classification else None
    )
    return labels, probs, every_probability(contract, output)
