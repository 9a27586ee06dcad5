"""Predict digits with an exported or registered model.

MODEL is an ``nnsweep export`` folder (its ``model.keras``), a ``.keras`` file, or an MLflow
model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``models:/m-…``) from the tracking
store. Every model is a ``.keras`` file loaded in Keras' safe mode: a registry model must be
one nnsweep logged (the ``keras`` flavour), never run through MLflow's pyfunc loader, so a
registered model cannot run code of its own here.

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
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
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
MAX_MLMODEL_BYTES = 1 << 20
# MLflow's own switch (default on in 3.x): off, pickled models fail instead of running code.
PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


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
    return _keras_predictor(path, model)


def _keras_predictor(path: Path, label: str) -> Predictor:
    """Load a ``.keras`` file in Keras' safe mode (no lambda or pickled code runs)."""
    import keras

    try:
        net = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"MODEL {label}: Keras cannot load it ({reason})") from None
    shapes = (tuple(net.input_shape)[1:], tuple(net.output_shape)[1:])
    if shapes != ((SIDE * SIDE,), (10,)):
        raise ExportError(
            f"MODEL {label}: maps {shapes[0]} to {shapes[1]}, not 784 pixels to 10 digits; give "
            "a model exported by nnsweep"
        )

    def run(x: np.ndarray) -> np.ndarray:
        # Keras' progress bar would land on stdout and corrupt --json / --csv output.
        with contextlib.redirect_stdout(io.StringIO()):
            return np.asarray(net.predict(x, batch_size=256, verbose=0))

    return run


def _mlflow_predictor(uri: str, tracking_uri: str) -> Predictor:
    """Load a registry model as nnsweep logged it: the Keras file only, never MLflow's loader.

    MLflow's generic ``pyfunc`` loader imports and runs whatever code a model carries (a
    custom ``PythonModel``, a ``loader_module``, pickles), so anyone who can register a model
    could run code on the predicting machine. Only the ``keras`` flavour's ``.keras`` file is
    read, in Keras' safe mode; any other model is refused before anything in it is loaded.
    """
    from .modeluri import download_model
    from .tracking import open_reader

    open_reader(tracking_uri)  # refuses a missing store before MLflow creates one
    with _no_pickles(), tempfile.TemporaryDirectory(prefix="nnsweep-predict-") as tmp:
        local = download_model(uri, tmp, tracking_uri)
        return _keras_predictor(logged_keras_file(local, uri), uri)


@contextlib.contextmanager
def _no_pickles() -> Iterator[None]:
    """MLflow's pickle switch off while a model is fetched: nnsweep never unpickles a model,
    and should anything in MLflow try, it must refuse."""
    previous = os.environ.get(PICKLE_SWITCH)
    os.environ[PICKLE_SWITCH] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PICKLE_SWITCH, None)
        else:
            os.environ[PICKLE_SWITCH] = previous


def logged_keras_file(local: Path, uri: str) -> Path:
    """The ``.keras`` file of a downloaded MLflow model, if it is one that nnsweep logs.

    Accepted: an ``MLmodel`` whose flavours are ``keras`` (a native ``.keras`` file at
    ``data/model.keras``, not an exported SavedModel) and, optionally, ``python_function``
    pointing at ``mlflow.keras`` with no code of its own.

    Raises:
        ExportError: any other model, naming the flavours found.
    """
    import yaml

    from .modelstore import MLFLOW_KERAS_FILE

    mlmodel = local / "MLmodel"
    if not mlmodel.is_file() or mlmodel.stat().st_size > MAX_MLMODEL_BYTES:
        raise ExportError(f"MODEL {uri}: no readable MLmodel file; give a model nnsweep logged")
    try:
        meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        meta = None
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    if not isinstance(flavors, dict):
        raise ExportError(
            f"MODEL {uri}: its MLmodel file lists no flavours; not a model nnsweep logged"
        )
    names = ", ".join(sorted(map(str, flavors))) or "none"
    problem = _flavor_problem(flavors)
    if problem:
        raise ExportError(
            f"MODEL {uri}: flavour(s) {names}: {problem}; nnsweep loads only the Keras models "
            "it logs, so no code shipped with a model runs here"
        )
    path = local / MLFLOW_KERAS_FILE
    inside = path.resolve().is_relative_to(local.resolve())
    if not inside or path.is_symlink() or not path.is_file():
        raise ExportError(
            f"MODEL {uri}: flavour(s) {names}: no {MLFLOW_KERAS_FILE} file; give a model nnsweep "
            "logged"
        )
    return path


def _flavor_problem(flavors: dict[Any, Any]) -> str | None:
    """Why an MLmodel's flavours are not what nnsweep logs, or None if they are."""
    keras_conf = flavors.get("keras")
    if not isinstance(keras_conf, dict):
        return "not the keras flavour"
    extra = set(flavors) - {"keras", "python_function"}
    if extra:
        return f"{', '.join(sorted(map(str, extra)))} is not the keras flavour"
    if keras_conf.get("save_exported_model") or keras_conf.get("data", "data") != "data":
        return "the keras flavour holds no native .keras file"
    pyfunc = flavors.get("python_function")
    if pyfunc is not None and (
        not isinstance(pyfunc, dict)
        or pyfunc.get("loader_module") != "mlflow.keras"
        or pyfunc.get("code")
    ):
        return "its python_function entry carries its own loader or code"
    return None
