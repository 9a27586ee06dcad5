"""Datasets: loaders, preprocessing and the seeded stratified splits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from nnsweep.data import DEBIAN_FASHION_DIR, load_dataset, load_raw, preprocess, stratified_split
from nnsweep.errors import DataError


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
