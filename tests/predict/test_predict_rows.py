"""`nnsweep predict` on rows: tables with string labels, gapped labels and a float target, raw
rows in (target column, missing values and unseen categories included), original labels out;
plain Keras in a fresh process agrees; bad rows and bad cards are one line, exit 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _predict_json(cli: Any, *args: Any) -> list[dict[str, Any]]:
    result = cli("predict", *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


# -- rows: tables with string and gapped labels, and regression ---------------------------------
KINDS = ("binary", "multiclass", "regression")


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per task, a model trained on a synthetic table (string labels good/bad, gapped labels
    1/3/7, a float target; a categorical, a constant and a gappy column) and saved as an export
    folder holds it: model.keras beside the card's io section."""
    import keras

    from nnsweep.data.load import load_dataset
    from nnsweep.data.modelio import ModelIO
    from nnsweep.export.card import CARD_FORMAT
    from nnsweep.spec.config import DatasetSpec
    from nnsweep.train.model import HyperParams, build_model
    from tests._tables import write_table

    root = tmp_path_factory.mktemp("tables")
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        path = write_table(root, kind, n=240)
        data = load_dataset(DatasetSpec.model_validate({"path": str(path), "target": "label"}))
        keras.utils.set_random_seed(0)
        hp = HyperParams(n_layers=1, units=(16,), batch_size=32, epochs=20, learning_rate=0.01)
        model = build_model(hp, **data.model_kwargs())
        model.fit(data.x_train, data.y_train, epochs=20, batch_size=32, verbose=0)
        folder = root / kind
        folder.mkdir()
        model.save(folder / "model.keras")
        io_section = ModelIO.of(data).as_dict()
        card = {"format": CARD_FORMAT, "io": io_section}
        (folder / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
        out[kind] = {"folder": folder, "data": data, "model": model, "io": io_section}
    return out


def _new_rows(tmp_path: Path, kind: str, n: int = 60) -> tuple[Path, Any]:
    """Rows the model never saw (another seed), the target column left in, one unseen
    category and a missing number among them."""
    from tests._tables import make_table

    frame = make_table(kind, n=n, seed=9)
    frame.loc[0, "colour"] = "purple"
    frame.loc[1, "x1"] = np.nan
    path = tmp_path / f"new_{kind}.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_rows_predict_with_the_original_labels(tables, cli, tmp_path, kind):
    """--csv: a header and one line per row with the original label (string or gapped int)
    and its probability, or the value; --json: the same, labels with their JSON type. The
    predictions are the plain model's on the same rows, and they are mostly right."""
    from nnsweep.data.features import to_inputs
    from nnsweep.tasks import Task

    t = tables[kind]
    path, frame = _new_rows(tmp_path, kind)
    result = cli("predict", t["folder"], path, "--csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    classification = kind != "regression"
    header = ["input", "row", "prediction", *(["probability"] if classification else [])]
    assert list(rows[0]) == header and len(rows) == len(frame)
    assert [int(r["row"]) for r in rows] == list(range(len(frame)))

    data = t["data"]
    output = t["model"].predict(to_inputs(frame, data.schema), verbose=0)
    labels, probs = Task.from_dict(t["io"]).labelled(output, data.class_names)
    as_json = _predict_json(cli, t["folder"], path)
    truth = frame["label"].tolist()
    if classification:
        assert [r["prediction"] for r in rows] == [str(v) for v in labels]
        assert [r["prediction"] for r in as_json] == labels
        np.testing.assert_allclose([float(r["probability"]) for r in rows], probs, atol=1e-5)
        expected = {"good", "bad"} if kind == "binary" else {1, 3, 7}
        assert set(labels) <= expected and {type(v) for v in labels} == {type(truth[0])}
        first = as_json[0]
        assert set(first["probabilities"]) == {str(v) for v in expected}
        assert first["probabilities"][str(first["prediction"])] == first["probability"]
        assert float(np.mean(np.array(labels) == np.array(truth))) >= 0.8
    else:
        np.testing.assert_allclose([float(r["prediction"]) for r in rows], labels, rtol=1e-5)
        np.testing.assert_allclose([r["prediction"] for r in as_json], labels, rtol=1e-6)
        mae = float(np.mean(np.abs(np.array(labels) - np.array(truth))))
        assert mae < 0.5 * float(np.mean(np.abs(np.array(truth) - np.mean(truth))))


FRESH_ROWS = """
import json, sys
import keras, numpy as np, pandas as pd, tensorflow as tf
numeric = json.loads(sys.argv[1])
for folder, csv, out in zip(*[iter(sys.argv[2:])] * 3):  # each export: its rows, where to save
    assert not keras.saving.get_custom_objects()  # nothing an earlier load left registered
    model = keras.saving.load_model(folder + "/model.keras", safe_mode=True)
    rows = pd.read_csv(csv)
    inputs = {"numeric": rows[numeric].to_numpy("float32"),
              "colour": tf.constant(rows[["colour"]].to_numpy(str))}
    np.save(out, model.predict(inputs, verbose=0))
print(any(m.startswith("nnsweep") for m in sys.modules))
"""


@pytest.fixture(scope="module")
def fresh(tables, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Per task, new rows (``_new_rows``) and what plain Keras in a fresh process (no nnsweep,
    one process for the three models) predicts for them from the raw columns."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("fresh")
    numeric = [c["name"] for c in tables["binary"]["io"]["features"] if c["kind"] == "numeric"]
    assert numeric == ["x1", "x2", "x3", "const"]
    out, args = {}, []
    for kind in KINDS:
        assert [c["name"] for c in tables[kind]["io"]["features"] if c["kind"] == "numeric"] == (
            numeric
        )
        path, _ = _new_rows(folder, kind)
        out[kind] = (path, folder / f"fresh_{kind}.npy")
        args += [str(tables[kind]["folder"]), str(path), str(out[kind][1])]
    proc = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_ROWS, json.dumps(numeric), *args],
        capture_output=True, text=True, timeout=300, cwd=folder,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"  # nnsweep was never imported
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_plain_keras_in_a_fresh_process_agrees_with_predict(tables, fresh, cli, kind):
    """Preprocessing lives in model.keras: plain Keras (no nnsweep) fed the raw columns, NaN
    and an unseen category included, gives what `nnsweep predict` gives."""
    path, saved = fresh[kind]
    plain = np.load(saved)
    rows = _predict_json(cli, tables[kind]["folder"], path)
    if kind == "regression":
        np.testing.assert_allclose([r["prediction"] for r in rows], plain[:, 0], rtol=1e-5)
    elif kind == "binary":
        np.testing.assert_allclose([r["probabilities"]["good"] for r in rows], plain[:, 0],
                                   atol=1e-5)  # fmt: skip
    else:
        got = [[r["probabilities"][k] for k in ("1", "3", "7")] for r in rows]
        np.testing.assert_allclose(got, plain, atol=1e-5)


def _bad_rows(tmp: Path, tables: dict[str, Any]) -> dict[str, tuple[list[Any], str]]:
    """Case name → (predict arguments, text the one-line error must hold)."""
    import shutil

    from tests._tables import make_table

    binary = tables["binary"]["folder"]
    frame = make_table("binary", n=5, seed=3)
    frame.drop(columns=["x2", "colour"]).to_csv(tmp / "missing.csv", index=False)
    frame.to_csv(tmp / "good.csv", index=False)
    frame.iloc[:0].to_csv(tmp / "header_only.csv", index=False)
    (tmp / "empty.csv").write_bytes(b"")
    (tmp / "rows.json").write_text('[{"x1": 1}]', encoding="utf-8")
    np.savez(tmp / "rows.npz", x=np.zeros((2, 4)))
    with open(tmp / "huge.csv", "wb") as fh:
        fh.truncate(300 << 20)  # sparse: no disk used
    cases: dict[str, tuple[list[Any], str]] = {
        "missing columns": ([binary, tmp / "missing.csv"],
                            "lack 2 feature column(s) the model reads: 'x2', 'colour'"),
        "no rows": ([binary, tmp / "header_only.csv"], "no rows"),
        "empty file": ([binary, tmp / "empty.csv"], "is empty"),
        "suffix": ([binary, tmp / "rows.json"], "unsupported file type .json; give .csv"),
        "array for named columns": ([binary, tmp / "rows.npz"], "reads named columns"),
        "oversized": ([binary, tmp / "huge.csv"], "over the limit of 268,435,456"),
        "no such input": ([binary, tmp / "nope.csv"], "nope.csv: no such file"),
    }  # fmt: skip
    # model folders whose card is wrong for the model, malformed, or missing
    for name, edit in {
        "labels": lambda io: io.update(class_names=["only one"]),
        "task": lambda io: io.update(task="ranking"),
        "swapped": lambda io: io.update(tables["multiclass"]["io"]),
    }.items():
        folder = tmp / f"card_{name}"
        shutil.copytree(binary, folder)
        card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
        edit(card["io"])
        (folder / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    cases["card labels"] = ([tmp / "card_labels", tmp / "good.csv"],
                            "io.class_names is not a list of 2 labels")  # fmt: skip
    cases["card task"] = ([tmp / "card_task", tmp / "good.csv"], "io.task is not a task")
    cases["card of another model"] = ([tmp / "card_swapped", tmp / "good.csv"],
                                      "gives (1,), but its card describes")  # fmt: skip
    broken = tmp / "card_broken"
    shutil.copytree(binary, broken)
    (broken / "model_card.json").write_text("{not json", encoding="utf-8")
    cases["card not json"] = ([broken, tmp / "good.csv"], "not readable JSON")
    bare = tmp / "bare"
    bare.mkdir()
    shutil.copy(binary / "model.keras", bare / "model.keras")
    cases["no card"] = ([bare, tmp / "good.csv"], "named inputs and has no model card")
    return cases


BAD_ROWS = [
    "missing columns", "no rows", "empty file", "suffix", "array for named columns", "oversized",
    "no such input", "card labels", "card task", "card of another model", "card not json",
    "no card",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_rows_are_one_line_exit_2(tables, cli, tmp_path, case):
    args, expected = _bad_rows(tmp_path, tables)[case]
    result = cli("predict", *args, "--csv")
    assert result.code == 2, (result.out, result.err)
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnsweep: error: "), result.err
    assert expected in lines[0]


@pytest.mark.slow
def test_parquet_rows_predict_as_the_csv_does(tables, cli, tmp_path):
    """The same rows as Parquet (numbers typed, text as text) give the CSV's predictions."""
    path, frame = _new_rows(tmp_path, "multiclass")
    parquet = tmp_path / "rows.parquet"
    frame.to_parquet(parquet)
    folder = tables["multiclass"]["folder"]
    from_csv = _predict_json(cli, folder, path)
    from_parquet = _predict_json(cli, folder, parquet)
    assert [r["prediction"] for r in from_parquet] == [r["prediction"] for r in from_csv]
    np.testing.assert_allclose([r["probability"] for r in from_parquet],
                               [r["probability"] for r in from_csv], atol=1e-6)  # fmt: skip


@pytest.fixture(scope="module")
def numeric_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An all-numeric table model (columns a, b, c; regression), untrained: rows may then come
    as arrays, in the schema's column order."""
    import pandas as pd

    from nnsweep.data.features import fit_schema
    from nnsweep.data.modelio import ModelIO
    from nnsweep.export.card import CARD_FORMAT
    from nnsweep.tasks import Task
    from nnsweep.train.model import HyperParams, build_model

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    schema = fit_schema(frame, dict.fromkeys(frame.columns, "numeric"))
    task = Task("regression")
    model = build_model(HyperParams(n_layers=1, units=(4,)), task=task, schema=schema,
                        target_scale=(10.0, 2.0))  # fmt: skip
    folder = tmp_path_factory.mktemp("numeric")
    model.save(folder / "model.keras")
    io_section = ModelIO(task, None, schema, "pixels", schema.width, "y").as_dict()
    (folder / "model_card.json").write_text(json.dumps({"format": CARD_FORMAT, "io": io_section}))
    return {"folder": folder, "model": model, "frame": frame}


@pytest.mark.parametrize("layout", ["npz x", "npz only array", "npy", "npy one row"])
def test_array_rows_for_an_all_numeric_table(numeric_model, cli, tmp_path, layout):
    """.npz/.npy rows in the schema's column order predict as the same rows in a CSV do."""
    frame = numeric_model["frame"].iloc[:7]
    csv_path = tmp_path / "rows.csv"
    frame.to_csv(csv_path, index=False)
    x = frame.to_numpy()
    path = tmp_path / ("rows.npz" if layout.startswith("npz") else "rows.npy")
    if layout == "npz x":
        np.savez(path, x=x, y=np.zeros(len(x)))
    elif layout == "npz only array":
        np.savez(path, features=x)
    else:
        np.save(path, x[0] if layout == "npy one row" else x)
    rows = _predict_json(cli, numeric_model["folder"], path)
    expected = _predict_json(cli, numeric_model["folder"], csv_path)
    expected = expected[:1] if layout == "npy one row" else expected
    assert [r["row"] for r in rows] == list(range(len(expected)))
    np.testing.assert_allclose([r["prediction"] for r in rows],
                               [r["prediction"] for r in expected], rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros((2, 4)), "array of shape (2, 4); this model reads rows of 3 values"),
        (np.array([["a", "b", "c"]]), "expected numbers (feature values)"),
        (np.zeros((2, 3, 1)), "array of shape (2, 3, 1)"),
    ],
)
def test_bad_array_rows_are_one_line(numeric_model, cli, tmp_path, array, expected):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    result = cli("predict", numeric_model["folder"], path)
    assert result.code == 2 and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err


@pytest.mark.slow
@pytest.mark.parametrize("case", ["csv.gz inflating past the limit", "parquet past the limit",
                                  "parquet with too many rows", "gz that is no gzip"])  # fmt: skip
def test_compressed_rows_are_bounded_before_parsing(tables, cli, tmp_path, monkeypatch, case):
    """A .csv.gz or Parquet file is measured decompressed (a stream count, the Parquet footer)
    before pandas reads it: a compression bomb is one line, exit 2. Limits lowered here so the
    files stay small."""
    import gzip

    import nnsweep.predict.rows as predictrows
    from tests._tables import make_table

    monkeypatch.setattr(predictrows, "MAX_INFLATED_BYTES", 1 << 20)
    frame = make_table("binary", n=200, seed=4)
    if case.startswith("csv.gz"):
        path = tmp_path / "bomb.csv.gz"
        with gzip.open(path, "wb") as fh:
            fh.write(frame.to_csv(index=False).encode() + b"0" * (2 << 20))
        expected = "over the limit of 1,048,576 bytes decompressed"
    elif case == "gz that is no gzip":
        path = tmp_path / "fake.csv.gz"
        path.write_bytes(b"x1,x2\n1,2\n")
        expected = "not a readable .gz file"
    else:
        path = tmp_path / "rows.parquet"
        rng = np.random.default_rng(0)  # distinct values: no dictionary encoding shrinks them
        pad = [rng.bytes(10_000).hex() for _ in range(len(frame))]
        big = frame.assign(pad=pad) if "limit" in case else frame
        big.to_parquet(path, compression="gzip")
        if "limit" in case:
            expected = "over the limit of 1,048,576 bytes decompressed"
        else:
            monkeypatch.setattr(predictrows, "MAX_ROWS", 100)
            expected = "200 rows, more than 100 in one call"
    result = cli("predict", tables["binary"]["folder"], path, "--csv")
    assert result.code == 2 and result.out == "", result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err
