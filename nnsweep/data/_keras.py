"""The seed notebooks' Keras datasets: IMDB reviews, Reuters newswires and Boston house prices.

Each loads through Keras' own loader and cache (``~/.keras/datasets``, downloaded once), or from
``path``: the ``.npz`` file Keras downloads, for machines without network. From a path, this
module repeats what the Keras loader does with the file, so both routes give the same arrays:

* ``imdb.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``) and ``reuters.npz`` (``x``,
  ``y``) hold reviews/newswires as lists of word ranks. Keras shuffles them with seed 113,
  prepends the start token 1, shifts every rank by 3 and maps ranks ``>= num_words`` to the
  out-of-vocabulary token 2; Reuters then keeps the first 80 % as training split. Each sequence
  becomes a multi-hot vector of ``num_words`` (word present or not), as in the notebooks.
  These files store ragged lists as pickled object arrays: they are read with an unpickler
  that only rebuilds NumPy arrays, so a tampered file cannot run code.
* ``boston_housing.npz`` (``x``, ``y``: 506 rows of 13 features and the price in k$) is
  shuffled with seed 113, the last 20 % being the test split.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nnsweep.errors import DataError, first_line

KERAS_DATASETS = ("imdb", "reuters", "boston_housing")
DEFAULT_NUM_WORDS = 10_000
KERAS_SEED = 113
TEST_SPLIT = 0.2
START_CHAR, OOV_CHAR, INDEX_FROM = 1, 2, 3
IMDB_LABELS = ("negative", "positive")
REUTERS_TOPICS = 46
BOSTON_COLUMNS = (
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
)  # fmt: skip
# The only globals a pickled NumPy object array needs (NumPy 1 and 2 spellings).
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)

Split = tuple[Any, np.ndarray, Any, np.ndarray]


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def read_keras_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of a Keras dataset ``.npz``; object arrays unpickled safely.

    Raises:
        DataError: missing/unreadable file, missing array, or a pickle that is not an array.
    """
    if not path.is_file():
        raise DataError(f"dataset.path: {path} is not a file; give the .npz Keras downloads")
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = {m.removesuffix(".npy"): m for m in archive.namelist()}
            for key in keys:
                if key not in members:
                    raise DataError(
                        f"dataset.path: {path.name} has no array {key!r}; it needs "
                        f"{', '.join(keys)} as Keras writes it"
                    )
                with archive.open(members[key]) as raw:
                    out[key] = _read_npy(io.BytesIO(raw.read()))
    except DataError:
        raise
    except Exception as exc:  # zip, format and pickle errors of a corrupt or hostile file
        reason = first_line(exc)[:160]
        raise DataError(f"dataset.path: {path} is not a readable Keras .npz ({reason})") from None
    return out


def _read_npy(buffer: io.BytesIO) -> np.ndarray:
    try:
        return np.lib.format.read_array(buffer, allow_pickle=False)
    except ValueError:  # an object array: its body is a pickle
        buffer.seek(0)
        major, _ = np.lib.format.read_magic(buffer)
        if major == 1:
            np.lib.format.read_array_header_1_0(buffer)
        else:  # 2.0 and 3.0 share the header layout
            np.lib.format.read_array_header_2_0(buffer)
        array = _ArraysOnly(buffer).load()
        if not isinstance(array, np.ndarray):
            raise ValueError("not an array") from None
        return array


# -- sequences ------------------------------------------------------------------------------
def _keras_words(sequences: Any, num_words: int) -> list[list[int]]:
    """Keras' ``load_data`` word handling: start token, rank shift, out-of-vocabulary token."""
    out = []
    for seq in sequences:
        try:
            shifted = [START_CHAR] + [int(w) + INDEX_FROM for w in seq]
        except (TypeError, ValueError):
            raise DataError(
                "dataset.path: a sequence is not a list of word ranks; give the .npz that Keras "
                "downloads"
            ) from None
        out.append([w if w < num_words else OOV_CHAR for w in shifted])
    return out


def multi_hot(sequences: Any, num_words: int) -> np.ndarray:
    """uint8 ``(n, num_words)``: 1 where the word occurs in the sequence (Keras' word ids)."""
    out = np.zeros((len(sequences), num_words), dtype=np.uint8)
    for i, seq in enumerate(sequences):
        ids = np.asarray(seq, dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < num_words)]
        out[i, ids] = 1
    return out


def _shuffled(rng: np.random.RandomState, *arrays: np.ndarray) -> list[np.ndarray]:
    order = np.arange(len(arrays[0]))
    rng.shuffle(order)
    return [a[order] for a in arrays]


def _imdb_file(path: Path, num_words: int) -> Split:
    f = read_keras_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    rng = np.random.RandomState(KERAS_SEED)
    x_train, y_train = _shuffled(rng, f["x_train"], f["y_train"])
    x_test, y_test = _shuffled(rng, f["x_test"], f["y_test"])
    return (
        _keras_words(x_train, num_words), y_train,
        _keras_words(x_test, num_words), y_test,
    )  # fmt: skip


def _reuters_file(path: Path, num_words: int) -> Split:
    f = read_keras_npz(path, ("x", "y"))
    xs, labels = _shuffled(np.random.RandomState(KERAS_SEED), f["x"], f["y"])
    words = _keras_words(xs, num_words)
    idx = int(len(words) * (1 - TEST_SPLIT))
    return words[:idx], np.array(labels[:idx]), words[idx:], np.array(labels[idx:])


def _boston_file(path: Path) -> Split:
    f = read_keras_npz(path, ("x", "y"))
    x, y = _shuffled(np.random.RandomState(KERAS_SEED), f["x"], f["y"])
    idx = int(len(x) * (1 - TEST_SPLIT))
    return np.array(x[:idx]), np.array(y[:idx]), np.array(x[idx:]), np.array(y[idx:])


def _from_keras(name: str, **kwargs: Any) -> Split:
    import keras

    module = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data(**kwargs)
    except Exception as exc:  # download failures surface as many exception types
        reason = first_line(exc)[:120]
        raise DataError(
            f"dataset {name}: Keras could not load or download it ({reason}); use --data-path "
            f"to a local {name}.npz"
        ) from None
    return x_train, y_train, x_test, y_test


def load_keras_dataset(
    name: str, path: str | Path | None, num_words: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(x_train, y_train, x_test, y_test, source) of ``imdb``, ``reuters`` or
    ``boston_housing``: multi-hot uint8 rows for the text datasets, 13 float features for
    Boston.

    Raises:
        DataError: unknown name, ``num_words`` for Boston, a bad file, or a failed download.
    """
    if name not in KERAS_DATASETS:
        raise DataError(f"dataset {name!r} is not one of {', '.join(KERAS_DATASETS)}")
    p = Path(path).expanduser() if path is not None else None
    if name == "boston_housing":
        if num_words is not None:
            raise DataError("dataset.num_words: boston_housing has no words; drop num_words")
        raw = _boston_file(p) if p else _from_keras(name)
        x_train, y_train, x_test, y_test = raw
        if np.asarray(x_train).ndim != 2 or np.asarray(x_train).shape[1] != len(BOSTON_COLUMNS):
            raise DataError(
                f"dataset.path: boston_housing rows have shape {np.asarray(x_train).shape[1:]}; "
                f"expected {len(BOSTON_COLUMNS)} features"
            )
        source = str(p) if p else "keras.datasets.boston_housing"
        return (
            np.asarray(x_train, np.float64), np.asarray(y_train, np.float32),
            np.asarray(x_test, np.float64), np.asarray(y_test, np.float32), source,
        )  # fmt: skip
    words = num_words or DEFAULT_NUM_WORDS
    if p is not None:
        raw = _imdb_file(p, words) if name == "imdb" else _reuters_file(p, words)
    else:
        raw = _from_keras(name, num_words=words)
    x_train, y_train, x_test, y_test = raw
    labels = np.concatenate([np.asarray(y_train), np.asarray(y_test)])
    n_classes = 2 if name == "imdb" else REUTERS_TOPICS
    if labels.dtype.kind not in "iu" or (
        len(labels) and (labels.min() < 0 or labels.max() >= n_classes)
    ):
        raise DataError(
            f"dataset.path: {name} labels must be integers 0-{n_classes - 1}; give the .npz "
            "Keras downloads"
        )
    source = str(p) if p else f"keras.datasets.{name} (num_words={words})"
    return (
        multi_hot(x_train, words), np.asarray(y_train, np.int32),
        multi_hot(x_test, words), np.asarray(y_test, np.int32), source,
    )  # fmt: skip


def class_names(name: str) -> tuple[str, ...] | None:
    """Label names of a Keras dataset (Reuters' 46 topics come with Keras), None for Boston."""
    if name == "imdb":
        return IMDB_LABELS
    if name == "reuters":
        import keras

        return tuple(keras.datasets.reuters.get_label_names())
    return None
