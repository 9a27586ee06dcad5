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

    from nnsweep.data.load import load_dataset, load_raw
    from nnsweep.train.model import HyperParams, build_model

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

    from nnsweep.predict.predict import read_image

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
