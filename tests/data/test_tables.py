"""User tables: CSV/Parquet/NPZ reading, label mapping, column kinds and every bad input."""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from nnsweep.data.features import MISSING, NUMERIC_INPUT
from nnsweep.data.tables import MAX_FILE_BYTES, TableSplits, load_table, read_rows
from nnsweep.errors import DataError


def _all_labels(t: TableSplits) -> Counter[Any]:
    names = t.class_names or ()
    y = np.concatenate([t.y_train, t.y_val, t.y_test])
    return Counter(names[i] for i in y)


@pytest.fixture(scope="module")
def sklearn_tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scikit-learn's bundled tables written as a user would have them."""
    root = tmp_path_factory.mktemp("tables")
    cancer = load_breast_cancer(as_frame=True).frame
    cancer["diagnosis"] = cancer.pop("target").map({0: "malignant", 1: "benign"})
    cancer.to_csv(root / "cancer.csv", index=False)
    wine = load_wine(as_frame=True).frame
    wine["cultivar"] = wine.pop("target").map({0: 1, 1: 3, 2: 7})  # gapped integer labels
    wine.to_csv(root / "wine.csv")  # with pandas' unnamed index column
    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    diabetes.to_parquet(root / "diabetes.parquet")
    return {
        name: root / f
        for name, f in (
            ("cancer", "cancer.csv"),
            ("wine", "wine.csv"),
            ("diabetes", "diabetes.parquet"),
        )
    }


def test_string_labels_map_to_sorted_classes(sklearn_tables: dict[str, Path]) -> None:
    t = load_table(sklearn_tables["cancer"], target="diagnosis", seed=0)
    assert t.task.kind == "binary" and t.class_names == ("benign", "malignant")
    assert _all_labels(t) == Counter(pd.read_csv(sklearn_tables["cancer"])["diagnosis"])
    assert len(t.schema.numeric) == 30 and not t.schema.categorical
    assert t.y_train.dtype == np.int32


def test_gapped_integer_labels_map_and_unmap(sklearn_tables: dict[str, Path]) -> None:
    t = load_table(sklearn_tables["wine"], target="cultivar", seed=0)
    assert t.task.kind == "multiclass" and t.task.n_classes == 3
    assert t.class_names == (1, 3, 7) and set(t.y_train) == {0, 1, 2}
    assert _all_labels(t) == Counter(pd.read_csv(sklearn_tables["wine"])["cultivar"])
    assert "Unnamed: 0" not in t.schema.names
    assert any("saved row index" in n for n in t.notes)


def test_parquet_regression(sklearn_tables: dict[str, Path]) -> None:
    t = load_table(sklearn_tables["diabetes"], target="target", seed=0)
    assert t.task.kind == "regression" and t.class_names is None
    sizes = len(t.y_train), len(t.y_val), len(t.y_test)
    assert sum(sizes) == 442 and sizes[2] == round(0.2 * 442) and t.y_train.dtype == np.float32
    assert len(t.fingerprint) == 64


def test_splits_are_seeded_stratified_and_the_test_split_ignores_the_seed(
    sklearn_tables: dict[str, Path],
) -> None:
    path = sklearn_tables["cancer"]
    a = load_table(path, target="diagnosis", seed=1, validation=0.2, test=0.25)
    b = load_table(path, target="diagnosis", seed=1, validation=0.2, test=0.25)
    c = load_table(path, target="diagnosis", seed=2, validation=0.2, test=0.25)
    np.testing.assert_array_equal(a.x_train[NUMERIC_INPUT], b.x_train[NUMERIC_INPUT])
    np.testing.assert_array_equal(a.x_test[NUMERIC_INPUT], c.x_test[NUMERIC_INPUT])
    assert not np.array_equal(a.x_val[NUMERIC_INPUT], c.x_val[NUMERIC_INPUT])
    share = [np.mean(y) for y in (a.y_train, a.y_val, a.y_test)]
    assert max(share) - min(share) < 0.02  # each split keeps the class balance
    assert len(a.y_test) == round(0.25 * 569)


def test_a_table_of_every_kind_of_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "price": [f"{v:,.2f}" for v in rng.uniform(500, 5000, n)],  # "1,234.50"
            "rooms": rng.integers(1, 6, n).astype(str),
            "const": 3,
            "city": rng.choice([" Oslo", "Bergen ", "Tromsø"], n),
            "code": rng.choice(["007", "042", "A17"], n),  # codes, some looking like numbers
            "flag": rng.choice([True, False], n),
            "name": [f"house {i}" for i in range(n)],
            "label": rng.choice(["bad", "good"], n),
        }
    )
    frame.loc[::10, "rooms"] = "?"
    frame.loc[::15, "city"] = ""
    frame.loc[3, "price"] = "call us"  # one stray text in a numeric column
    frame.loc[[5, 9], "label"] = None
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False, sep=";", encoding="latin-1", quoting=1)
    t = load_table(path, target="label", seed=0)
    kinds = {c.name: c.kind for c in t.schema.columns}
    assert kinds == {
        "price": "numeric", "rooms": "numeric", "const": "numeric", "city": "categorical",
        "code": "categorical", "flag": "numeric",
    }  # fmt: skip
    price = t.schema.columns[0]
    assert 500 < price.median < 5000
    city = next(c for c in t.schema.columns if c.name == "city")
    assert set(city.vocabulary) == {"Oslo", "Bergen", "Tromsø", MISSING}
    assert len(t.y_train) + len(t.y_val) + len(t.y_test) == n - 2
    notes = " | ".join(t.notes)
    assert "dropped 2 row(s) whose target 'label' is missing" in notes
    assert "'name' dropped" in notes and "rooms (" in notes
    assert "'price': 1 training row(s) hold text that is not a number (e.g. 'call us')" in notes
    code = next(c for c in t.schema.columns if c.name == "code")
    assert set(code.vocabulary) == {"007", "042", "A17"}
    assert (t.x_train[NUMERIC_INPUT][:, 2] == 3).all()  # the constant column, raw
    assert set(t.x_train) == {NUMERIC_INPUT, "city", "code"}


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("tab.tsv", lambda f, p: f.to_csv(p, sep="\t", index=False)),
        ("pipe.csv", lambda f, p: f.to_csv(p, sep="|", index=False)),
        ("bom.csv", lambda f, p: f.to_csv(p, index=False, encoding="utf-8-sig")),
        (
            "zipped.csv.gz",
            lambda f, p: p.write_bytes(gzip.compress(f.to_csv(index=False).encode())),
        ),
        ("table.npz", lambda f, p: np.savez(p, x=f[["a", "b"]].to_numpy(), y=f["y"].to_numpy())),
    ],
)
def test_file_formats(
    tmp_path: Path, name: str, write: Callable[[pd.DataFrame, Path], None]
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "y": [0, 1] * 20})
    write(frame, tmp_path / name)
    t = load_table(tmp_path / name, target=None if name.endswith(".npz") else "y", seed=0)
    assert t.task.kind == "binary" and len(t.schema.numeric) == 2
    assert len(t.y_train) + len(t.y_val) + len(t.y_test) == 40


def test_npz_with_its_own_test_split_and_string_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "own.npz"
    y_train = np.array(["cat", "dog", "eel"] * 10)
    np.savez(path, x_train=rng.normal(size=(30, 2, 2)), y_train=y_train,
             x_test=rng.normal(size=(6, 2, 2)), y_test=np.array(["eel", "cat"] * 3))  # fmt: skip
    t = load_table(path, target=None, seed=0, validation=0.2)
    assert t.class_names == ("cat", "dog", "eel") and len(t.y_test) == 6
    assert t.y_test.tolist() == [2, 0] * 3 and t.schema.names == ("x0", "x1", "x2", "x3")
    with pytest.raises(DataError, match="brings its own test split"):
        load_table(path, target=None, test=0.2)


def test_read_rows_takes_the_model_columns_and_keeps_text_as_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=30), "code": ["007", "042", "x"] * 10, "y": [0, 1, 1] * 10}
    )
    frame.to_csv(tmp_path / "train.csv", index=False)
    t = load_table(tmp_path / "train.csv", target="y", seed=0)
    pd.DataFrame({"code": ["007"], "x": [1.0], "y": [1]}).to_csv(tmp_path / "rows.csv", index=False)
    rows = read_rows(tmp_path / "rows.csv", t.schema)
    assert rows["code"].tolist() == ["007"]  # not the number 7
    pd.DataFrame({"x": [1.0]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match=r"lack 1 feature column\(s\) the model reads: 'code'"):
        read_rows(tmp_path / "short.csv", t.schema)
    np.savez(tmp_path / "rows.npz", x=np.ones((2, 2)))
    assert read_rows(tmp_path / "rows.npz", t.schema).shape == (2, 2)


# -- every bad input: one line naming the field ------------------------------------------------
GOOD = "a,b,y\n" + "".join(f"{i},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(30))


def _csv(text: str | bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "t.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    return write


def _npz(**arrays: Any) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        np.savez(folder / "t.npz", **arrays)
        return folder / "t.npz"

    return write


BAD: list[tuple[str, Callable[[Path], Path], dict[str, Any], str]] = [
    (
        "missing target column",
        _csv(GOOD),
        {"target": "price"},
        r"dataset.target: 'price' is not a column of t.csv; columns: a, b, y",
    ),
    ("target in another case", _csv(GOOD), {"target": "Y"}, r"did you mean 'y'\?"),
    ("no target named", _csv(GOOD), {"target": None}, "dataset.target: name the column"),
    (
        "unknown task",
        _csv(GOOD),
        {"target": "y", "task": "ordinal"},
        "dataset.task: 'ordinal' is not one of",
    ),
    ("one class", _csv("a,y\n1,k\n2,k\n3,k\n"), {"target": "y"}, "1 distinct value"),
    (
        "binary with 3 classes",
        _csv(GOOD),
        {"target": "b", "task": "binary"},
        "binary needs exactly 2",
    ),
    (
        "regression on text",
        _csv(GOOD),
        {"target": "y", "task": "regression"},
        "regression needs numbers",
    ),
    (
        "target all missing",
        _csv("a,y\n1,\n2,?\n"),
        {"target": "y"},
        "every row's target is missing",
    ),
    (
        "class with one row",
        _csv(GOOD + "5,5,maybe\n"),
        {"target": "y"},
        "class 'maybe' has only 1 row",
    ),
    ("too few rows", _csv("a,y\n1,0.5\n2,1.5\n"), {"target": "y"}, "2 rows are too few"),
    ("empty file", _csv(""), {"target": "y"}, "is empty"),
    ("header only", _csv("a,b,y\n"), {"target": "y"}, "has a header but no rows"),
    ("blank lines", _csv("\n\n\n"), {"target": "y"}, "holds no columns"),
    (
        "binary file",
        _csv(b"\x89PNG\r\n\x1a\n\x00\x00\x00"),
        {"target": "y"},
        "binary, not a text CSV",
    ),
    ("ragged rows", _csv("a,y\n1,2\n1,2,3,4\n"), {"target": "y"}, "not a readable csv file"),
    (
        "unknown feature",
        _csv(GOOD),
        {"target": "y", "features": ("a", "zz")},
        "dataset.features: 'zz' is not a column",
    ),
    (
        "target as feature",
        _csv(GOOD),
        {"target": "y", "features": ("a", "y")},
        "'y' is the target; drop it",
    ),
    ("no feature column", _csv("y\n1\n0\n"), {"target": "y"}, "no column besides the target"),
    (
        "only an identifier",
        _csv("id,y\n" + "".join(f"r{i},{i % 2}\n" for i in range(20))),
        {"target": "y"},
        "no feature column left",
    ),
    (
        "list column",
        lambda d: (
            pd.DataFrame({"a": [[1], [2]] * 10, "y": [0, 1] * 10}).to_parquet(d / "t.parquet"),
            d / "t.parquet",
        )[1],
        {"target": "y"},
        "holds nested values",
    ),
    (
        "corrupt parquet",
        lambda d: (d / "t.parquet").write_bytes(b"PAR1garbage") and d / "t.parquet",
        {"target": "y"},
        "not a readable parquet file",
    ),
    ("no such file", lambda d: d / "absent.csv", {"target": "y"}, "does not exist"),
    (
        "a folder",
        lambda d: (d / "dir.csv").mkdir() or d / "dir.csv",
        {"target": "y"},
        "is not a file",
    ),
    (
        "unknown suffix",
        lambda d: (d / "t.xlsx").write_text("x") and d / "t.xlsx",
        {"target": "y"},
        "not a table nnsweep reads",
    ),
    ("npz without y", _npz(x=np.ones((4, 2))), {"target": None}, "needs x and y"),
    (
        "npz object arrays",
        _npz(x=np.array([[1], [1, 2]], dtype=object), y=np.arange(2)),
        {"target": None},
        "array of dtype object",
    ),
    (
        "npz one-hot y",
        _npz(x=np.ones((4, 2)), y=np.eye(4)),
        {"target": None},
        r"save y.argmax\(axis=1\)",
    ),
    (
        "npz text x",
        _npz(x=np.array([["a"], ["b"]]), y=np.arange(2)),
        {"target": None},
        "x must be numbers",
    ),
    (
        "npz length mismatch",
        _npz(x=np.ones((4, 2)), y=np.arange(3)),
        {"target": None},
        "need the same, non-zero number of rows",
    ),
    (
        "npz with a target",
        _npz(x=np.ones((4, 2)), y=np.arange(4)),
        {"target": "y"},
        "drop dataset.target",
    ),
    (
        "npz widths differ",
        _npz(
            x_train=np.ones((20, 2)),
            y_train=np.arange(20) % 2,
            x_test=np.ones((2, 3)),
            y_test=np.array([0, 1]),
        ),
        {"target": None},
        "different numbers of columns",
    ),
]


@pytest.mark.parametrize(("case", "make", "kwargs", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_tables_raise_one_data_error_line(
    tmp_path: Path,
    case: str,
    make: Callable[[Path], Path],
    kwargs: dict[str, Any],
    message: str,
) -> None:
    path = make(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        load_table(path, **kwargs)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("dataset")


def test_a_test_label_no_training_row_holds_is_counted_not_mapped(tmp_path: Path) -> None:
    """Classes come from the training rows: label 5, only in y_test, is left out of the test
    split and counted (the export reports it), never mapped onto a training class."""
    path = _npz(
        x_train=np.ones((20, 2)),
        y_train=np.arange(20) % 2,
        x_test=np.ones((3, 2)),
        y_test=np.array([0, 5, 1]),
    )(tmp_path)
    table = load_table(path, target=None)
    assert table.unseen_test == {"5": 1}
    assert list(table.y_test) == [0, 1] and table.class_names is not None
    assert len(table.class_names) == 2


def test_oversized_files_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with open(path, "wb") as fh:  # sparse: no disk used
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(DataError, match="reads at most 1 GiB; sample it"):
        load_table(path, target="y")


def test_a_quantity_with_stray_text_drops_those_rows_but_classes_keep_theirs(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    price = [f"{v:.2f}" for v in rng.uniform(1e5, 9e5, 100)]
    price[7] = "call us"
    grade = [str(g) for g in rng.integers(1, 4, 100)]
    grade[:3] = ["other"] * 3
    frame = pd.DataFrame({"x": rng.normal(size=100), "price": price, "grade": grade})
    frame.to_csv(tmp_path / "t.csv", index=False)
    t = load_table(tmp_path / "t.csv", target="price", features=("x",))
    assert t.task.kind == "regression" and len(t.y_train) + len(t.y_val) + len(t.y_test) == 99
    assert any("1 row(s) whose target 'price' is text, not a number (e.g. 'call us')" in n
               for n in t.notes)  # fmt: skip
    t = load_table(tmp_path / "t.csv", target="grade", features=("x",))
    assert t.task.kind == "multiclass" and t.class_names == ("1", "2", "3", "other")


def test_semicolon_files_with_decimal_commas(tmp_path: Path) -> None:
    lines = ["a;b;y"] + [f"{i},5;{i}.25;{'ja' if i % 2 else 'nein'}" for i in range(20)]
    (tmp_path / "de.csv").write_text("\n".join(lines), encoding="latin-1")
    t = load_table(tmp_path / "de.csv", target="y", seed=0)
    assert [c.kind for c in t.schema.columns] == ["numeric", "numeric"]
    x = t.x_train[NUMERIC_INPUT]
    assert (x[:, 0] % 1 == 0.5).all() and (x[:, 1] % 1 == 0.25).all()


def test_large_integer_labels_stay_distinct(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "y": [100_000_001, 100_000_002] * 20})
    frame.to_csv(tmp_path / "t.csv", index=False)
    t = load_table(tmp_path / "t.csv", target="y")
    assert t.class_names == (100_000_001, 100_000_002) and t.task.kind == "binary"


def test_too_many_columns_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nnsweep.data.tables

    monkeypatch.setattr(nnsweep.data.tables, "MAX_FEATURES", 3)
    pd.DataFrame({c: [1, 2] for c in "abcdy"}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="has 4 feature columns; nnsweep reads at most 3"):
        load_table(tmp_path / "t.csv", target="y")
