"""Predict digits with an exported or registered model.

MODEL is an ``nnsweep export`` folder (its ``model.keras``), a ``.keras`` file, or an MLflow
model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``models:/m-…``) loaded as an MLflow
pyfunc model from the tracking store.

INPUT files:

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

import contextlib
import io
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_KEYS = ("x", "images", "x_test")
SIDE = 28


class Background(str, Enum):
    """What the input's background is: ``auto`` looks at the image border."""

    auto = "auto"
    dark = "dark"
    light = "light"


_URI_PREFIXES = ("models:/",)

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Prediction:
    """One input's predicted digit, its probability, all 10 probabilities, and whether the
    input was inverted to MNIST polarity first."""

    input: str
    digit: int
    probability: float
    probabilities: tuple[float, ...]
    inverted: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "class": self.digit,
            "probability": self.probability,
            "inverted": self.inverted,
            "probabilities": list(self.probabilities),
        }


def predict(
    model: str,
    inputs: Sequence[str | Path],
    *,
    tracking_uri: str,
    background: Background | str = Background.auto,
) -> list[Prediction]:
    """Predict the digit of every image in ``inputs`` with ``model`` (see the module docstring).

    Raises:
        ExportError: a model or input that cannot be read, with the path and the fix.
    """
    try:
        bg = Background(background)
    except ValueError:
        allowed = ", ".join(b.value for b in Background)
        raise ExportError(f"--background {background!r} is not one of {allowed}") from None
    names, images = read_inputs(inputs)
    images, inverted = to_mnist_polarity(images, bg)
    probs = load_predictor(model, tracking_uri)(images.reshape(len(images), SIDE * SIDE))
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
            images = read_array(path)
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
    return names, np.concatenate(stacks)


def read_array(path: Path) -> np.ndarray:
    """An ``.npy``/``.npz`` of images or 784-vectors as float32 ``(n, 28, 28)`` in [0, 1]."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ExportError(f"INPUT {path}: not a readable NumPy file ({exc})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.files)
            key = keys[0] if len(keys) == 1 else next((k for k in NPZ_KEYS if k in keys), None)
            if key is None:
                raise ExportError(
                    f"INPUT {path}: .npz holds {', '.join(keys) or 'no arrays'}; save one array, "
                    f"or name it {', '.join(NPZ_KEYS)}"
                )
            array = loaded[key]
    else:
        array = loaded
    return _as_images(np.asarray(array), str(path))


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
    values = images.astype(np.float64)
    if not np.isfinite(values).all():
        raise ExportError(f"INPUT {where}: array holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 255:
        raise ExportError(
            f"INPUT {where}: pixel values run from {low:g} to {high:g}; expected 0-255 or 0-1"
        )
    if array.dtype.kind in "ui" or high > 1.0:
        values = values / 255.0
    return values.astype(np.float32)


def read_image(path: Path) -> np.ndarray:
    """A PNG/JPEG as float32 ``(28, 28)`` in [0, 1], as the file shows it (no inversion)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ExportError(f"INPUT {path}: not a readable image ({exc})") from None
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


def to_mnist_polarity(images: np.ndarray, background: Background) -> tuple[np.ndarray, np.ndarray]:
    """Invert the images that are dark-on-light, so every digit is light on dark as in MNIST.

    Returns:
        The images, and a boolean per image: was it inverted.
    """
    if background == Background.dark:
        flip = np.zeros(len(images), dtype=bool)
    elif background == Background.light:
        flip = np.ones(len(images), dtype=bool)
    else:
        border = np.concatenate(
            [images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]], axis=1
        )
        flip = border.mean(axis=1) > 0.5
    out = np.where(flip[:, None, None], 1.0 - images, images).astype(np.float32)
    return out, flip


# -- models -----------------------------------------------------------------------------------
def load_predictor(model: str, tracking_uri: str) -> Predictor:
    """A function from float32 ``(n, 784)`` pixels to ``(n, 10)`` probabilities."""
    if model.startswith(_URI_PREFIXES):
        return _mlflow_predictor(model, tracking_uri)
    path = Path(model)
    if path.is_dir():
        path = path / "model.keras"
        if not path.is_file():
            raise ExportError(
                f"MODEL {model}: folder has no model.keras; give an `nnsweep export` folder, a "
                ".keras file or models:/NAME@alias"
            )
    elif not path.exists():
        raise ExportError(
            f"MODEL {model}: no such file or folder; give an `nnsweep export` folder, a .keras "
            "file or models:/NAME@alias"
        )
    elif path.suffix != ".keras":
        raise ExportError(
            f"MODEL {model}: not a .keras file; give an `nnsweep export` folder, a .keras file "
            "or models:/NAME@alias"
        )
    import keras

    try:
        net = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"MODEL {model}: Keras cannot load it ({reason})") from None
    shapes = (tuple(net.input_shape)[1:], tuple(net.output_shape)[1:])
    if shapes != ((SIDE * SIDE,), (10,)):
        raise ExportError(
            f"MODEL {model}: maps {shapes[0]} to {shapes[1]}, not 784 pixels to 10 digits; give "
            "a model exported by nnsweep"
        )

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(net.predict(x, batch_size=256, verbose=0))

    return run


def _mlflow_predictor(uri: str, tracking_uri: str) -> Predictor:
    import mlflow.pyfunc

    from .modelstore import download_model
    from .tracking import open_reader

    open_reader(tracking_uri)  # refuses a missing store before MLflow creates one
    with tempfile.TemporaryDirectory(prefix="nnsweep-predict-") as tmp:
        local = download_model(uri, tmp, tracking_uri)
        try:
            pyfunc = mlflow.pyfunc.load_model(str(local))
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:200]
            raise ExportError(f"MODEL {uri}: MLflow cannot load it as pyfunc ({reason})") from None

    def run(x: np.ndarray) -> np.ndarray:
        # The Keras flavour calls model.predict() with its progress bar on stdout, which would
        # corrupt --json / --csv output.
        with contextlib.redirect_stdout(io.StringIO()):
            return np.asarray(pyfunc.predict(x))

    return run
