"""Datasets: loaders, preprocessing, seeded stratified splits, tables and Keras' datasets."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nnsweep.data.load import (
    DEBIAN_FASHION_DIR,
    load_dataset,
    load_raw,
    preprocess,
    stratified_split,
    sweep_dataset,
)
from nnsweep.errors import DataError
from nnsweep.spec.config import parse_spec
from nnsweep.tasks import DIGITS, Task


def test_stratified_split_is_disjoint_stratified_and_deterministic() -> None:
    y = np.repeat(np.arange(10), [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])
    keep, held = stratified_split(y, 0.2, seed=7)
    assert set(keep).isdisjoint(held) and len(keep) + len(held) == len(y)
    counts = np.bincount(y[held], minlength=10)
    assert list(counts) == [20, 18, 16, 14, 12, 10, 8, 6, 4, 2]
    again = stratified_split(y, 0.2, seed=7)
    assert np.array_equal(keep, again[0]) and np.array_equal(held, again[1])
    other = stratified_split(y, 0.2, seed=8)
    assert not np.array_equal(held, other[1])


def test_mnist_5k_splits() -> None:
    ds = load_dataset("mnist_5k", validation=0.1, seed=0)
    assert ds.sizes == {"train": 3600, "val": 400, "test": 1000}
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert x.dtype == np.float32 and x.shape[1] == 784
        assert 0.0 <= x.min() and x.max() <= 1.0
    for y, n in ((ds.y_train, 360), (ds.y_val, 40), (ds.y_test, 100)):
        assert list(np.bincount(y)) == [n] * 10
    # validation rows are training rows, never test rows
    rows = {r.tobytes() for r in ds.x_test}
    assert not any(r.tobytes() in rows for r in ds.x_val)
    assert not any(r.tobytes() in rows for r in ds.x_train[:500])


def test_test_split_does_not_depend_on_the_sweep_seed() -> None:
    a = load_dataset("mnist_5k", validation=0.1, seed=1)
    b = load_dataset("mnist_5k", validation=0.1, seed=2)
    assert np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_val, b.y_val) or not np.array_equal(a.x_val, b.x_val)


def test_dataset_is_cached_per_process() -> None:
    assert load_dataset("mnist_5k", seed=0) is load_dataset("mnist_5k", seed=0)


def test_preprocess_flattens_and_scales() -> None:
    x = np.full((2, 28, 28), 255, dtype=np.uint8)
    out = preprocess(x)
    assert out.shape == (2, 784) and out.dtype == np.float32 and out.max() == 1.0


def _write_idx(folder: Path, n: int = 20, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    for stem, shape in (("train", (n, 28, 28)), ("t10k", (n // 2, 28, 28))):
        images = rng.integers(0, 256, size=shape, dtype=np.uint8)
        labels = (np.arange(shape[0]) % 10).astype(np.uint8)
        for kind, arr, magic in (("images-idx3", images, 0x0803), ("labels-idx1", labels, 0x0801)):
            header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
            data = header + arr.tobytes()
            name = f"{stem}-{kind}-ubyte" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder(tmp_path: Path, gz: bool) -> None:
    _write_idx(tmp_path, n=100, gz=gz)
    load_raw.cache_clear()
    ds = load_dataset("mnist", str(tmp_path), validation=0.1, seed=0)
    assert ds.sizes == {"train": 90, "val": 10, "test": 50}
    assert ds.source == str(tmp_path)


def test_npz_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        y_train=np.arange(30) % 10,
        x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        y_test=np.arange(10),
    )
    ds = load_dataset("mnist", str(path), validation=0.2, seed=0)
    assert ds.sizes == {"train": 20, "val": 10, "test": 10}


BAD_PATHS = [
    ("missing", "no such file or folder"),
    ("empty_dir", "no train-images-idx"),
    ("bad.npz", "not a readable .npz"),
    ("partial.npz", "missing array 'x_test'"),
    ("corrupt_dir", "not a readable IDX file"),
]


@pytest.mark.parametrize(("name", "message"), BAD_PATHS)
def test_bad_paths_raise_data_error(tmp_path: Path, name: str, message: str) -> None:
    target = tmp_path / name
    if name == "empty_dir":
        target.mkdir()
    elif name == "bad.npz":
        target.write_bytes(b"not a zip")
    elif name == "partial.npz":
        np.savez(target, x_train=np.zeros((1, 28, 28)), y_train=[0], y_test=[0])
    elif name == "corrupt_dir":
        target.mkdir()
        _write_idx(target)
        (target / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bgarbage")
    with pytest.raises(DataError, match=message) as info:
        load_dataset("mnist", str(target))
    assert "\n" not in str(info.value)


def test_mnist_5k_takes_no_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="takes no path"):
        load_dataset("mnist_5k", str(tmp_path))


def test_keras_download_failure_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    load_raw.cache_clear()
    with pytest.raises(DataError, match="use --data-path .* or dataset mnist_5k"):
        load_dataset("mnist")


@pytest.mark.skipif(not DEBIAN_FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist absent")
def test_debian_fashion_mnist_full_size() -> None:
    ds = load_dataset("fashion_mnist", validation=0.1, seed=0)
    assert ds.sizes == {"train": 54000, "val": 6000, "test": 10000}
    assert ds.source == str(DEBIAN_FASHION_DIR)


def test_npz_and_idx_copies_of_the_same_digits_share_a_fingerprint(tmp_path: Path) -> None:
    _write_idx(tmp_path, n=40)
    raw, _ = load_raw("mnist", str(tmp_path))
    keys = ("x_train", "y_train", "x_test", "y_test")
    np.savez(tmp_path / "same.npz", **dict(zip(keys, raw, strict=True)))
    a = load_dataset("mnist", str(tmp_path), seed=0)
    b = load_dataset("mnist", str(tmp_path / "same.npz"), seed=0)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    assert a.task == DIGITS and a.n_classes == 10 and a.n_outputs == 10 and a.input_width == 784


def test_the_digits_through_a_spec_are_the_same_cached_dataset() -> None:
    spec = parse_spec("name: s\ndataset: mnist_5k\ntrials: 1\nseed: 3\n")
    data = sweep_dataset(spec)
    assert data is load_dataset("mnist_5k", validation=0.1, seed=3)
    assert (
        data.schema is None and data.target_scale is None and data.class_names == tuple(range(10))
    )
    assert data.model_kwargs() == {
        "task": DIGITS, "schema": None, "input_dim": 784, "input_name": "pixels",
        "target_scale": None,
    }  # fmt: skip
    assert "mnist_5k: multiclass over 10 classes; 784 inputs; 3,600 train" in data.describe()


# -- tables through the sweep file -------------------------------------------------------------
def _houses(folder: Path, n: int = 200) -> Path:
    rng = np.random.default_rng(0)
    area = rng.uniform(30, 200, n)
    town = rng.choice(["north", "south", "east"], n)
    price = 1000 * area + 40_000 * (town == "north") + rng.normal(0, 5000, n)
    frame = pd.DataFrame({"area": area, "town": town, "price": price.round(2)})
    frame.to_csv(folder / "houses.csv", index=False)
    return folder / "houses.csv"


def test_a_table_dataset_carries_task_schema_and_scale(tmp_path: Path) -> None:
    path = _houses(tmp_path)
    spec = parse_spec(f"name: h\ntrials: 1\ndataset: {{path: {path}, target: price}}\n")
    data = sweep_dataset(spec)
    assert data.task == Task("regression") and data.target == "price" and data.n_classes is None
    # validation "auto": under 2,000 training rows, 5-fold cross-validation of the training part
    assert data.sizes == {"train": 160, "val": 0, "test": 40} and data.folds == 5
    mean, std = data.target_scale or (0, 0)
    assert mean == pytest.approx(data.y_train.mean()) and std == pytest.approx(data.y_train.std())
    assert data.schema is not None and data.input_width == 1 + 4  # area + 3 towns + unknown
    assert data.model_kwargs()["schema"] is data.schema
    x, y = data.train_and_val()
    assert x["numeric"].shape == (160, 1) and x["town"].shape == (160, 1) and len(y) == 160
    rows = data.inputs(pd.DataFrame({"town": ["west"], "area": ["55.5"]}))
    assert rows["numeric"].tolist() == [[55.5]]
    with pytest.raises(DataError, match="lack 1 feature column"):
        data.inputs(pd.DataFrame({"area": [1.0]}))
    info = json.loads(json.dumps(data.info()))
    assert info["task"] == "regression" and info["features"][1]["name"] == "town"
    assert info["fingerprint"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "houses.csv: regression of 'price'; 1 numeric, 1 categorical" in data.describe()


def test_labels_map_class_indices_back(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(30.0), "grade": [3, 5, 9] * 10})
    frame.to_csv(tmp_path / "g.csv", index=False)
    spec = parse_spec(
        f"name: g\ntrials: 1\ndataset: {{path: {tmp_path / 'g.csv'}, target: grade}}\n"
    )
    data = sweep_dataset(spec)
    assert data.class_names == (3, 5, 9) and data.labels(np.array([2, 0])) == [9, 3]
    assert data.task.kind == "multiclass" and data.n_outputs == 3


# -- Keras' datasets from the files Keras downloads ----------------------------------------------
def _object_array(rows: list[list[int]]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def _expected_rows(seqs: list[list[int]], num_words: int) -> list[bytes]:
    rows = []
    for seq in seqs:
        row = np.zeros(num_words, np.uint8)
        row[[1, *(w + 3 if w + 3 < num_words else 2 for w in seq)]] = 1
        rows.append(row.tobytes())
    return rows


def test_imdb_from_its_npz_is_keras_word_ids_as_multi_hot(tmp_path: Path) -> None:
    seqs = [[i, i + 1, 40 + i] for i in range(24)]  # ranks from 40 on are beyond num_words 50
    labels = np.arange(24) % 2
    np.savez(
        tmp_path / "imdb.npz",
        x_train=_object_array(seqs[:16]), y_train=labels[:16],
        x_test=_object_array(seqs[16:]), y_test=labels[16:],
    )  # fmt: skip
    spec = parse_spec(
        f"name: i\ntrials: 1\ndataset: {{name: imdb, path: {tmp_path / 'imdb.npz'}, "
        "num_words: 50, validation: 0.25}\n"
    )
    data = sweep_dataset(spec)
    assert data.task == Task("binary", 2) and data.class_names == ("negative", "positive")
    assert data.x_train.dtype == np.uint8 and data.x_train.shape == (12, 50)
    assert data.input_name == "words" and data.input_width == 50
    got = {(r.tobytes(), int(y)) for r, y in zip(data.x_train, data.y_train, strict=True)}
    got |= {(r.tobytes(), int(y)) for r, y in zip(data.x_val, data.y_val, strict=True)}
    want = set(zip(_expected_rows(seqs[:16], 50), labels[:16].tolist(), strict=True))
    assert got == want
    test = {(r.tobytes(), int(y)) for r, y in zip(data.x_test, data.y_test, strict=True)}
    assert test == set(zip(_expected_rows(seqs[16:], 50), labels[16:].tolist(), strict=True))


def test_reuters_keeps_the_first_80_percent_after_keras_shuffle(tmp_path: Path) -> None:
    seqs = [[i % 7, i] for i in range(50)]
    np.savez(tmp_path / "reuters.npz", x=_object_array(seqs), y=np.arange(50) % 4)
    data = load_dataset("reuters", str(tmp_path / "reuters.npz"), seed=0)
    assert data.task == Task("multiclass", 46) and len(data.class_names or ()) == 46
    assert data.sizes["test"] == 10 and data.sizes["train"] + data.sizes["val"] == 40
    assert data.x_train.shape[1] == 10_000  # default num_words


def test_boston_housing_is_a_named_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "boston.npz", x=rng.normal(size=(50, 13)), y=rng.uniform(5, 50, 50))
    data = load_dataset("boston_housing", str(tmp_path / "boston.npz"), seed=0)
    assert data.task.kind == "regression" and data.target == "MEDV"
    assert data.schema is not None and data.schema.names[:3] == ("CRIM", "ZN", "INDUS")
    assert data.sizes == {"train": 40, "val": 0, "test": 10} and data.folds == 5


class _Gadget:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("touch pwned",))


def test_a_tampered_keras_npz_runs_no_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = np.empty(2, dtype=object)
    evil[:] = [_Gadget(), [1, 2]]
    np.savez(tmp_path / "imdb.npz", x_train=evil, y_train=[0, 1], x_test=evil, y_test=[0, 1])
    with pytest.raises(DataError, match="not a readable Keras .npz .*refused to load") as info:
        load_dataset("imdb", str(tmp_path / "imdb.npz"))
    assert "\n" not in str(info.value) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("name", "arrays", "message"),
    [
        ("imdb", {"x_train": [[1]]}, "has no array 'y_train'"),
        ("reuters", {"x": _object_array([[1], [2]]), "y": np.array([0, 99])}, "integers 0-45"),
        ("boston_housing", {"x": np.ones((10, 4)), "y": np.ones(10)}, "expected 13 features"),
    ],
)
def test_bad_keras_files_raise_data_error(
    tmp_path: Path, name: str, arrays: dict[str, Any], message: str
) -> None:
    np.savez(tmp_path / f"{name}.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(name, str(tmp_path / f"{name}.npz"))


def test_keras_downloads_that_fail_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(keras.datasets.reuters, "load_data", offline)
    with pytest.raises(DataError, match="use --data-path to a local reuters.npz"):
        load_dataset("reuters", seed=11)
