"""`nnsweep predict`: arrays and images in, digits out, with MNIST polarity handled.

One small Keras model is trained once for the module on the bundled mnist_5k training split;
the inputs are real MNIST digits from its test split, which that model never saw, written as
arrays and rendered as PNG/JPEG files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

N_DIGITS = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 32-unit MLP fit for 3 epochs, saved as .keras, and real test digits (uint8)."""
    import keras

    from nnsweep.data import load_dataset, load_raw
    from nnsweep.model import HyperParams, build_model

    root = tmp_path_factory.mktemp("predict")
    data = load_dataset("mnist_5k")
    keras.utils.set_random_seed(0)
    model = build_model(HyperParams(n_layers=1, units=(32,), batch_size=64, epochs=3))
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=64, verbose=0)
    path = root / "digits.keras"
    model.save(path)
    (_, _, x_test, y_test), _ = load_raw("mnist_5k")
    images = np.asarray(x_test[:N_DIGITS], dtype=np.uint8).reshape(-1, 28, 28)
    probs = model.predict(images.reshape(-1, 784).astype(np.float32) / 255.0, verbose=0)
    return {
        "root": root,
        "model": path,
        "images": images,
        "labels": np.asarray(y_test[:N_DIGITS]),
        "probs": probs,
    }


def _predict_json(cli: Callable[..., Any], *args: Any) -> list[dict[str, Any]]:
    result = cli("predict", *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _png(path: Path, pixels: np.ndarray, mode: str = "L") -> Path:
    from PIL import Image

    Image.fromarray(pixels, mode=mode).save(path)
    return path


@pytest.mark.slow
def test_png_digits_match_the_array_and_are_mostly_right(trained, cli, tmp_path):
    """Lossless 28x28 PNGs of unseen test digits predict exactly as the array does, and the
    model reads real handwriting it never trained on (≥ 75 %; it scores ~88 % here)."""
    pngs = [_png(tmp_path / f"digit_{i:02d}.png", img) for i, img in enumerate(trained["images"])]
    rows = _predict_json(cli, trained["model"], *pngs)

    assert [r["input"] for r in rows] == [str(p) for p in pngs]
    probs = np.array([r["probabilities"] for r in rows])
    np.testing.assert_allclose(probs, trained["probs"], atol=1e-6)
    assert [r["class"] for r in rows] == trained["probs"].argmax(axis=1).tolist()
    assert not any(r["inverted"] for r in rows)
    accuracy = float((probs.argmax(axis=1) == trained["labels"]).mean())
    assert accuracy >= 0.75


@pytest.mark.slow
def test_white_background_image_is_inverted_in_auto_mode(trained, cli, tmp_path):
    """A dark digit on white paper is inverted by --background auto (exactly back to the MNIST
    pixels); --background dark keeps it as it is and the prediction changes."""
    img = trained["images"][0]
    paper = _png(tmp_path / "paper.png", 255 - img)

    auto = _predict_json(cli, trained["model"], paper)[0]
    assert auto["inverted"] is True
    np.testing.assert_allclose(auto["probabilities"], trained["probs"][0], atol=1e-6)

    kept = _predict_json(cli, trained["model"], paper, "--background", "dark")[0]
    assert kept["inverted"] is False
    assert not np.allclose(kept["probabilities"], trained["probs"][0], atol=1e-3)

    forced = _predict_json(cli, trained["model"], paper, "--background", "light")[0]
    assert forced["inverted"] is True and forced["class"] == auto["class"]


@pytest.mark.slow
def test_transparent_png_with_black_ink_reads_as_paper(trained, cli, tmp_path):
    """Black strokes on a transparent background (a drawing app's export) count as ink on
    white paper, so auto mode recovers the MNIST digit."""
    img = trained["images"][1]
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = img  # black ink whose opacity is the MNIST intensity
    row = _predict_json(cli, trained["model"], _png(tmp_path / "ink.png", rgba, "RGBA"))[0]
    assert row["inverted"] is True
    np.testing.assert_allclose(row["probabilities"], trained["probs"][1], atol=2e-3)


@pytest.mark.slow
def test_larger_png_and_jpeg_keep_confident_predictions(trained, cli, tmp_path):
    """Images are resized to 28x28: an 84x84 PNG and a 28x28 JPEG of each confidently
    classified digit give the same class."""
    from PIL import Image

    confident = np.flatnonzero(trained["probs"].max(axis=1) > 0.9)[:8]
    assert len(confident) >= 5
    files = []
    for i in confident:
        img = Image.fromarray(trained["images"][i])
        big, jpeg = tmp_path / f"big_{i}.png", tmp_path / f"d_{i}.jpg"
        img.resize((84, 84), Image.Resampling.NEAREST).save(big)
        img.save(jpeg, quality=95)
        files += [big, jpeg]
    rows = _predict_json(cli, trained["model"], *files)
    expected = np.repeat(trained["probs"][confident].argmax(axis=1), 2)
    assert [r["class"] for r in rows] == expected.tolist()


def test_non_square_image_is_padded_with_its_border_colour(tmp_path):
    from PIL import Image

    from nnsweep.predict import read_image

    canvas = np.full((20, 60), 200, dtype=np.uint8)
    canvas[5:15, 25:35] = 10
    path = tmp_path / "wide.png"
    Image.fromarray(canvas).save(path)
    out = read_image(path)
    assert out.shape == (28, 28) and out.dtype == np.float32
    # Padding took the border's grey, not black: the top and bottom rows stay light.
    assert abs(float(out[0].mean()) - 200 / 255) < 0.02
    assert abs(float(out[-1].mean()) - 200 / 255) < 0.02
    assert out.min() < 0.2  # the dark square survived


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout",
    ["uint8 (n,28,28)", "uint8 (28,28)", "float01 (n,784)", "float255 (n,784)",
     "float01 (784,)", "uint8 (n,28,28,1)", "npz one array", "npz key x"],
)  # fmt: skip
def test_array_layouts_and_scales_agree(trained, cli, tmp_path, layout):
    """Every accepted array layout and pixel scale gives the same probabilities."""
    imgs = trained["images"][:4]
    scale, _, shape = layout.partition(" ")
    arrays = {
        "uint8 (n,28,28)": imgs,
        "uint8 (28,28)": imgs[0],
        "float01 (n,784)": imgs.reshape(-1, 784).astype(np.float32) / 255,
        "float255 (n,784)": imgs.reshape(-1, 784).astype(np.float64),
        "float01 (784,)": imgs[0].reshape(784).astype(np.float32) / 255,
        "uint8 (n,28,28,1)": imgs[..., None],
        "npz one array": imgs,
        "npz key x": imgs,
    }
    array = arrays[layout]
    if layout.startswith("npz"):
        path = tmp_path / "digits.npz"
        extra = {"y": np.arange(4)} if layout == "npz key x" else {}
        np.savez(path, **({"x": array} if extra else {"whatever": array}), **extra)
    else:
        path = tmp_path / "digits.npy"
        np.save(path, array)
    rows = _predict_json(cli, trained["model"], path)
    n = 1 if array.ndim == 1 or array.shape == (28, 28) else 4
    assert len(rows) == n
    names = [str(path)] if n == 1 else [f"{path}[{i}]" for i in range(n)]
    assert [r["input"] for r in rows] == names
    np.testing.assert_allclose([r["probabilities"] for r in rows], trained["probs"][:n], atol=1e-5)


@pytest.mark.slow
def test_table_and_csv_output(trained, cli, tmp_path):
    path = tmp_path / "two.npy"
    np.save(path, trained["images"][:2])
    table = cli("predict", trained["model"], path)
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split() == ["input", "class", "probability"]
    for i, line in enumerate(lines[1:]):
        name, digit, prob = line.split()
        assert name == f"{path}[{i}]"
        assert int(digit) == int(trained["probs"][i].argmax())
        assert float(prob) == pytest.approx(float(trained["probs"][i].max()), abs=1e-4)

    as_csv = cli("predict", trained["model"], path, "--csv")
    assert as_csv.code == 0, as_csv.err
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert list(rows[0]) == ["input", "class", "probability", "inverted",
                             *(f"p{i}" for i in range(10))]  # fmt: skip
    assert [int(r["class"]) for r in rows] == trained["probs"][:2].argmax(axis=1).tolist()
    probs = [[float(r[f"p{i}"]) for i in range(10)] for r in rows]
    np.testing.assert_allclose(probs, trained["probs"][:2], atol=1e-5)


@pytest.mark.slow
def test_json_and_csv_together_is_refused(trained, cli, tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, trained["images"][0])
    result = cli("predict", trained["model"], path, "--json", "--csv")
    assert result.code == 2
    assert result.out == ""
    assert result.err.strip() == "nnsweep: error: --json and --csv: pick one output format"


def _bad_inputs(tmp: Path, model: Path) -> dict[str, tuple[list[Any], str]]:
    """Case name → (predict arguments, text the one-line error must hold)."""
    import keras

    np.save(tmp / "shape.npy", np.zeros((3, 27, 28), dtype=np.uint8))
    np.save(tmp / "negative.npy", -np.ones((28, 28), dtype=np.float32))
    np.save(tmp / "big.npy", np.full((28, 28), 300.0))
    np.save(tmp / "nan.npy", np.full((784,), np.nan))
    np.save(tmp / "text.npy", np.array(["a", "b"]))
    np.savez(tmp / "keys.npz", a=np.zeros((28, 28)), b=np.zeros((28, 28)))
    (tmp / "broken.png").write_bytes(b"not a png at all")
    (tmp / "notes.txt").write_text("7", encoding="utf-8")
    (tmp / "model.h5").write_bytes(b"")
    (tmp / "empty_dir").mkdir()
    cnn = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    cnn.save(tmp / "other.keras")
    good = tmp / "good.npy"
    np.save(good, np.zeros((28, 28), dtype=np.uint8))
    return {
        "shape": ([model, tmp / "shape.npy"], "array of shape (3, 27, 28); expected (28, 28)"),
        "negative": ([model, tmp / "negative.npy"], "expected 0-255 or 0-1"),
        "above 255": ([model, tmp / "big.npy"], "pixel values run from 300 to 300"),
        "nan": ([model, tmp / "nan.npy"], "NaN or infinite"),
        "strings": ([model, tmp / "text.npy"], "expected numbers"),
        "npz keys": ([model, tmp / "keys.npz"], "holds a, b; save one array, or name it x"),
        "broken png": ([model, tmp / "broken.png"], "not a readable image"),
        "suffix": ([model, tmp / "notes.txt"], "unsupported file type .txt"),
        "missing input": ([model, tmp / "nope.png"], "nope.png: no such file"),
        "missing model": ([tmp / "nope.keras", good], "no such file or folder"),
        "not keras": ([tmp / "model.h5", good], "not a .keras file"),
        "dir without model": ([tmp / "empty_dir", good], "folder has no model.keras"),
        "other model": ([tmp / "other.keras", good], "maps (28, 28, 1) to (10,), not 784 pixels"),
        "background": ([model, good, "--background", "grey"], "'grey' is not one of auto"),
    }


BAD_CASES = [
    "shape", "negative", "above 255", "nan", "strings", "npz keys", "broken png", "suffix",
    "missing input", "missing model", "not keras", "dir without model", "other model",
    "background",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_exit_2(trained, cli, tmp_path, case):
    args, expected = _bad_inputs(tmp_path, trained["model"])[case]
    result = cli("predict", *args)
    assert result.code == 2, result.err
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnsweep: error: ")
    assert expected in lines[0]


def test_help_documents_scales_and_polarity(cli):
    result = cli("predict", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    for phrase in ("0-255", "0-1", "white digit on black", "inverted", "--json", "--csv",
                   "models:/NAME@alias", "28x28"):  # fmt: skip
        assert phrase in text, phrase


# -- rows: tables with string and gapped labels, and regression ---------------------------------
KINDS = ("binary", "multiclass", "regression")


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per task, a model trained on a synthetic table (string labels good/bad, gapped labels
    1/3/7, a float target; a categorical, a constant and a gappy column) and saved as an export
    folder holds it: model.keras beside the card's io section."""
    import keras

    from nnsweep.card import CARD_FORMAT
    from nnsweep.config import DatasetSpec
    from nnsweep.data import load_dataset
    from nnsweep.model import HyperParams, build_model
    from nnsweep.modelio import ModelIO
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
    from nnsweep.features import to_inputs
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
model = keras.saving.load_model(sys.argv[1] + "/model.keras", safe_mode=True)
rows = pd.read_csv(sys.argv[2])
inputs = {"numeric": rows[json.loads(sys.argv[3])].to_numpy("float32"),
          "colour": tf.constant(rows[["colour"]].to_numpy(str))}
np.save(sys.argv[4], model.predict(inputs, verbose=0))
print(any(m.startswith("nnsweep") for m in sys.modules))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_plain_keras_in_a_fresh_process_agrees_with_predict(tables, cli, tmp_path, kind):
    """Preprocessing lives in model.keras: plain Keras (no nnsweep) fed the raw columns, NaN
    and an unseen category included, gives what `nnsweep predict` gives."""
    import subprocess
    import sys

    t = tables[kind]
    path, _ = _new_rows(tmp_path, kind)
    numeric = [c["name"] for c in t["io"]["features"] if c["kind"] == "numeric"]
    assert numeric == ["x1", "x2", "x3", "const"]
    saved = tmp_path / "fresh.npy"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_ROWS, str(t["folder"]), str(path),
         json.dumps(numeric), str(saved)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
    plain = np.load(saved)
    rows = _predict_json(cli, t["folder"], path)
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
