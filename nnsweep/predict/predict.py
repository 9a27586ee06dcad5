"""Predict with an exported or registered model: digits from images, labels or values from rows.

A digit model (784 pixels → 10 classes) reads the image and array files below; every other
model reads rows (see :mod:`nnsweep.predict.rows`): a table's CSV/Parquet/NPZ feature rows, or
an array dataset's ``.npy``/``.npz`` rows, and answers with the original labels.

MODEL is an ``nnsweep export`` folder (its ``model.keras``), a ``.keras`` file, or an MLflow
model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``models:/m-…``) from the tracking
store. Every model is a ``.keras`` file loaded in Keras' safe mode: a registry model must be
one nnsweep logged (the ``keras`` flavour), never run through MLflow's pyfunc loader, so a
registered model cannot run code of its own here.

INPUT files of a digit model:

* ``.npy`` / ``.npz``: one 28×28 image or 784-vector, or a stack of them (``(n, 28, 28)``,
  ``(n, 28, 28, 1)``, ``(n, 784)``). Integer arrays, and float arrays whose maximum is above 1,
  are read as 0–255; other float arrays as 0–1. An ``.npz`` holds one array, or names it
  ``x``, ``images`` or ``x_test``.
* ``.png`` / ``.jpg`` / ``.jpeg``: one digit per file, converted to grayscale (transparent
  pixels count as white), padded to a square with its border colour and resized to 28×28.

Polarity: the model learnt MNIST, a light digit on a dark background. ``background="auto"``
inverts any image whose border is mostly light (a dark digit on white paper), ``"dark"``
never inverts and ``"light"`` always does. The model also expects the digit centred and
filling most of the frame, as MNIST digits do.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from nnsweep.data.rowmodel import to_mnist_polarity
from nnsweep.errors import ExportError, first_line
from nnsweep.predict.loader import URI_PREFIXES, LoadedModel, load_predictor, peek_io
from nnsweep.predict.output import Prediction, render
from nnsweep.predict.rows import RowPrediction, predict_rows, read_batches

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_KEYS = ("x", "images", "x_test")
SIDE = 28
# At most all of MNIST (train and test) per call: float32 pixels of 70,000 images are 220 MB.
MAX_IMAGES = 70_000
MAX_IMAGE_FILE_BYTES = 256 << 20  # a photo of a digit is a few MB; Pillow reads what it holds


class Background(str, Enum):
    """What the input's background is: ``auto`` looks at the image border."""

    auto = "auto"
    dark = "dark"
    light = "light"


def predict(
    model: str,
    inputs: Sequence[str | Path],
    *,
    tracking_uri: str,
    background: Background | str = Background.auto,
    loaded: LoadedModel | None = None,
) -> list[Prediction] | list[RowPrediction]:
    """Predict every input with ``model`` (see the module docstring): the digit of every image
    for a digit model, else the label or value of every row. ``loaded``: ``model`` already
    loaded (by :func:`~nnsweep.predict.loader.load_predictor`).

    Raises:
        ExportError: a model or input that cannot be read, with the path and the fix.
    """
    try:
        bg = Background(background)
    except ValueError:
        allowed = ", ".join(b.value for b in Background)
        raise ExportError(f"--background {background!r} is not one of {allowed}") from None
    # Inputs are read and checked before a local model is loaded, so hostile input costs no
    # TensorFlow start-up; the card (plain JSON) says which reader a model needs.
    contract = None
    images_only = all(Path(p).suffix.lower() in IMAGE_SUFFIXES + ARRAY_SUFFIXES for p in inputs)
    if loaded is not None:
        contract = loaded.io
    elif model.startswith(URI_PREFIXES) or (inputs and not images_only and peek_io(model) is None):
        # a registry model's card comes with it; rows for a card-less model: the model says
        loaded = load_predictor(model, tracking_uri)
        contract = loaded.io
    else:
        contract = peek_io(model)
    if contract is not None and not contract.is_digits:
        batches = read_batches(inputs, contract)
        return predict_rows(loaded or load_predictor(model, tracking_uri), batches)
    names, images = read_inputs(inputs)
    images, inverted = to_mnist_polarity(images, bg)
    loaded = loaded or load_predictor(model, tracking_uri)
    if not loaded.io.is_digits:  # a card-less model that is no digit model: refused there
        raise ExportError(f"MODEL {model}: not a digit model; give its `nnsweep export` folder")
    probs = loaded(images.reshape(len(images), SIDE * SIDE))
    return [
        Prediction(
            input=name,
            digit=int(row.argmax()),
            probability=float(row.max()),
            probabilities=tuple(float(p) for p in row),
            inverted=bool(flip),
        )
        for name, row, flip in zip(names, probs, inverted, strict=True)
    ]


def write_predictions(
    model: str,
    inputs: Sequence[str | Path],
    *,
    tracking_uri: str,
    background: Background | str = Background.auto,
    fmt: str = "text",
    write: Callable[[str], None],
) -> None:
    """Predict every input as :func:`predict` does and write the output, rendered as ``fmt``
    (see :func:`~nnsweep.predict.output.render`), through ``write``. CSV files of a table
    model's rows stream: read, predicted and written chunk by chunk in bounded memory, with a
    progress bar on a terminal (:mod:`nnsweep.predict.stream`).

    Raises:
        ExportError: as :func:`predict` says.
    """
    from nnsweep.predict.stream import stream_predictions, streamable

    local = not model.startswith(URI_PREFIXES)
    if local and not streamable(peek_io(model), inputs):
        write(render(predict(model, inputs, tracking_uri=tracking_uri, background=background), fmt))
        return
    loaded = load_predictor(model, tracking_uri)
    if streamable(loaded.io, inputs):
        stream_predictions(loaded, inputs, fmt, write)
        return
    results = predict(
        model, inputs, tracking_uri=tracking_uri, background=background, loaded=loaded
    )
    write(render(results, fmt))


# -- inputs -----------------------------------------------------------------------------------
def read_inputs(paths: Sequence[str | Path]) -> tuple[list[str], np.ndarray]:
    """Names and images, float32 ``(n, 28, 28)`` in [0, 1], of every input file in order."""
    if not paths:
        raise ExportError("INPUT: give at least one .npy, .npz, .png or .jpg file")
    names: list[str] = []
    stacks: list[np.ndarray] = []
    for raw in paths:
        path = Path(raw)
        suffix = path.suffix.lower()
        if not path.is_file():
            raise ExportError(f"INPUT {path}: no such file")
        if suffix in ARRAY_SUFFIXES:
            images = read_array(path, max_images=MAX_IMAGES - len(names))
            names += (
                [str(path)] if len(images) == 1 else [f"{path}[{i}]" for i in range(len(images))]
            )
        elif suffix in IMAGE_SUFFIXES:
            images = read_image(path)[None]
            names.append(str(path))
        else:
            raise ExportError(
                f"INPUT {path}: unsupported file type {suffix or '(none)'}; give .npy, .npz, "
                ".png, .jpg or .jpeg"
            )
        stacks.append(images)
        if len(names) > MAX_IMAGES:
            raise ExportError(
                f"INPUT: more than {MAX_IMAGES:,} images in one call; predict them in batches"
            )
    return names, np.concatenate(stacks)


def read_array(path: Path, max_images: int = MAX_IMAGES) -> np.ndarray:
    """An ``.npy``/``.npz`` of images or 784-vectors as float32 ``(n, 28, 28)`` in [0, 1].

    Sizes, dtype and (in an ``.npz``) the zip member are checked before anything is loaded
    (see :mod:`nnsweep.data.arrays`): at most ``max_images`` images, numbers only.
    """
    from nnsweep.data.arrays import load_array, preferred_key

    choose = preferred_key(path, NPZ_KEYS, "name it", ExportError)

    array, _ = load_array(
        path,
        choose=choose,
        max_count=max(max_images, 1) * SIDE * SIDE,
        kinds="uif",
        what="numbers (pixel values)",
        error=ExportError,
    )
    return _as_images(array, str(path))


def _as_images(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind not in "uif" or array.size == 0:
        raise ExportError(
            f"INPUT {where}: array of dtype {array.dtype} and size {array.size}; expected "
            "numbers (pixel values)"
        )
    shape = array.shape
    if shape[-1:] == (1,) and array.ndim == 4:
        array = array[..., 0]
    if array.shape[-2:] == (SIDE, SIDE) and array.ndim in (2, 3):
        images = array.reshape(-1, SIDE, SIDE)
    elif array.shape[-1] == SIDE * SIDE and array.ndim in (1, 2):
        images = array.reshape(-1, SIDE, SIDE)
    else:
        raise ExportError(
            f"INPUT {where}: array of shape {shape}; expected (28, 28), (784,), (n, 28, 28), "
            "(n, 28, 28, 1) or (n, 784)"
        )
    values = np.array(images, dtype=np.float32)  # one copy, also out of a memory map
    if not np.isfinite(values).all():
        raise ExportError(f"INPUT {where}: array holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 255:
        raise ExportError(
            f"INPUT {where}: pixel values run from {low:g} to {high:g}; expected 0-255 or 0-1"
        )
    if array.dtype.kind in "ui" or high > 1.0:
        values /= np.float32(255.0)
    return values


def read_image(path: Path) -> np.ndarray:
    """A PNG/JPEG as float32 ``(28, 28)`` in [0, 1], as the file shows it (no inversion).

    An image over Pillow's pixel limit (``Image.MAX_IMAGE_PIXELS``, a decompression bomb) is
    refused when it is opened, before its pixels are decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = path.stat().st_size
    if size > MAX_IMAGE_FILE_BYTES:
        raise ExportError(
            f"INPUT {path}: {size:,} bytes, over the limit of {MAX_IMAGE_FILE_BYTES:,} for an "
            "image; scale it down first"
        )
    try:
        with warnings.catch_warnings():
            # Pillow only warns between the limit and twice it; over the limit is refused here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened)
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ExportError(
            f"INPUT {path}: image over {Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's limit for "
            "decompression bombs); scale it down first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = first_line(exc)[:200]
        raise ExportError(f"INPUT {path}: not a readable image ({reason})") from None
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels become white paper, so auto polarity sees a light background.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    gray = image.convert("L")
    if gray.size != (SIDE, SIDE):
        gray = _pad_square(gray).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return np.asarray(gray, dtype=np.float32) / np.float32(255.0)


def _pad_square(gray: Any) -> Any:
    """Pad a grayscale image to a square with the median of its border, keeping its aspect."""
    from PIL import Image

    width, height = gray.size
    if width == height:
        return gray
    pixels = np.asarray(gray)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    side = max(width, height)
    square = Image.new("L", (side, side), int(np.median(border)))
    square.paste(gray, ((side - width) // 2, (side - height) // 2))
    return square
