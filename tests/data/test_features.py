"""Feature preprocessing inside the model: reading raw values, the schema, the Keras head."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnsweep.data.features import (
    CLIP,
    MAX_CATEGORIES,
    MISSING,
    NUMERIC_INPUT,
    Column,
    FeatureSchema,
    concat_rows,
    fit_array_schema,
    fit_schema,
    input_name,
    n_rows,
    take_rows,
    to_category,
    to_inputs,
    to_numeric,
)
from nnsweep.data.head import build_head
from nnsweep.errors import DataError

NAN = float("nan")


@pytest.mark.parametrize(
    ("values", "expected", "junk"),
    [
        (["1", " 2.5 ", "?", "", "NA"], [1, 2.5, NAN, NAN, NAN], 0),
        (["1,234", "-", None], [1234, NAN, NAN], 0),
        (["3", "abc", "4"], [3, NAN, 4], 1),
        ([True, False], [1, 0], 0),
        ([True, False, None], [1, 0, NAN], 0),  # a True/False column with a gap is object
        (["True", " false ", "TRUE"], [1, 0, 1], 0),  # JSON strings, any case
        (["yes", "3"], [NAN, 3], 1),
        ([1, 2, 3], [1, 2, 3], 0),
        ([1e300, -1e300, 2.0], [np.inf, -np.inf, 2], 0),  # beyond float32: missing for the model
        ([b"7", "8"], [7, 8], 0),
    ],
)  # fmt: skip
def test_to_numeric_reads_numbers_as_text_and_marks_the_rest_missing(
    values: list[object], expected: list[float], junk: int
) -> None:
    out, n_junk, example = to_numeric(pd.Series(values, name="c"))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array(expected, dtype=np.float32))
    assert n_junk == junk and (example in ("abc", "yes")) == bool(junk)


def test_to_numeric_refuses_lists() -> None:
    with pytest.raises(DataError, match="column 'c' holds nested values"):
        to_numeric(pd.Series([[1, 2], [3]], name="c"))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([" red", "blue ", "", None], ["red", "blue", MISSING, MISSING]),
        ([3.0, 2.5, NAN], ["3", "2.5", MISSING]),  # whole floats read as the integers they are
        ([3, 4], ["3", "4"]),
        ([True, False], ["True", "False"]),
    ],
)
def test_to_category_gives_stripped_strings(values: list[object], expected: list[str]) -> None:
    assert to_category(pd.Series(values)).tolist() == expected


def test_input_names_are_safe_and_unique() -> None:
    taken = {NUMERIC_INPUT}
    names = [input_name(c, taken) for c in ("a b/c", "1st", "a b/c", "numeric", "", "é")]
    assert names == ["a_b_c", "c_1st", "a_b_c_2", "numeric_2", "column", "column_2"]


def test_fit_schema_learns_from_the_rows_it_is_given() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, NAN, 4.0, 100.0, 3.0],
            "const": [7.0] * 6,
            "empty": [NAN] * 6,
            "color": ["red", "red", "blue", "blue", None, "green"],  # green: once
            "id": ["a", "b", "c", "d", "e", "f"],
        }
    )
    kinds = {"x": "numeric", "const": "numeric", "empty": "numeric"}
    kinds |= {"color": "categorical", "id": "categorical"}
    schema = fit_schema(frame, kinds)  # type: ignore[arg-type]
    assert schema.names == ("x", "const", "color")
    x, const, color = schema.columns
    assert x.median == 3.0
    filled = np.array([1, 2, 3, 4, 100, 3.0])
    assert x.mean == pytest.approx(filled.mean()) and x.std == pytest.approx(filled.std())
    assert (const.mean, const.std) == (7.0, 1.0)  # a constant column maps to 0, not NaN
    assert color.vocabulary == ("blue", "red")  # seen once: unknown slot
    assert schema.width == 2 + 3
    notes = " | ".join(schema.notes)
    assert "'empty' dropped: no numeric value" in notes
    assert "'id' dropped: no category appears in 2 training rows" in notes
    assert "x (1 rows)" in notes
    assert FeatureSchema.from_dict(json.loads(json.dumps(schema.as_dict()))) == schema


def test_many_categories_keep_the_most_frequent() -> None:
    values = [f"c{i:03d}" for i in range(150) for _ in range(2 + (i < 10))]
    schema = fit_schema(pd.DataFrame({"c": values}), {"c": "categorical"})
    vocab = schema.columns[0].vocabulary
    assert len(vocab) == MAX_CATEGORIES and vocab[:10] == tuple(f"c{i:03d}" for i in range(10))
    assert any("kept the 100 most frequent of 150" in n for n in schema.notes)


def test_no_column_left_is_a_data_error() -> None:
    frame = pd.DataFrame({"id": ["a", "b", "c"], "empty": [None, None, None]})
    with pytest.raises(DataError, match="no feature column left") as info:
        fit_schema(frame, {"id": "categorical", "empty": "numeric"})
    assert "\n" not in str(info.value)


SCHEMA = FeatureSchema(
    (
        Column("x", "numeric", NUMERIC_INPUT, median=2.0, mean=1.0, std=4.0),
        Column("z", "numeric", NUMERIC_INPUT, median=0.0, mean=5.0, std=1.0),
        Column("color", "categorical", "color", vocabulary=("red", "blue", MISSING)),
    )
)


def test_the_head_imputes_standardises_clips_and_one_hot_encodes() -> None:
    import keras

    inputs, features = build_head(SCHEMA)
    head = keras.Model(inputs, features)
    rows = pd.DataFrame(
        {
            "x": [5.0, NAN, np.inf, 1e30],
            "z": ["5", "?", "6", "7"],
            "color": ["blue", "purple", None, " red "],
            "target": [1, 2, 3, 4],  # extra columns are ignored
        }
    )
    got = head.predict(to_inputs(rows, SCHEMA), verbose=0)
    x = np.array([(5 - 1) / 4, (2 - 1) / 4, (2 - 1) / 4, CLIP])  # NaN and inf → median 2
    z = np.array([0.0, -5.0, 1.0, 2.0])  # '?' → median 0
    # StringLookup: slot 0 is out-of-vocabulary, then the vocabulary in order
    onehot = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    np.testing.assert_allclose(got, np.column_stack([x, z, onehot]), rtol=1e-6)


def test_rows_missing_a_column_are_refused_by_name() -> None:
    with pytest.raises(
        DataError, match=r"lack 2 feature column\(s\) the model reads: 'z', 'color'"
    ):
        to_inputs(pd.DataFrame({"x": [1.0]}), SCHEMA)


def test_arrays_feed_an_all_numeric_schema_only() -> None:
    schema = fit_array_schema(np.array([[1.0, 2.0], [3.0, NAN], [5.0, 6.0]]))
    assert schema.names == ("x0", "x1") and schema.columns[1].median == 4.0
    assert to_inputs(np.ones((4, 2), np.int64), schema)[NUMERIC_INPUT].dtype == np.float32
    with pytest.raises(DataError, match="3 values per row, but the model reads 2 columns"):
        to_inputs(np.ones((4, 3)), schema)
    with pytest.raises(DataError, match="reads named columns"):
        to_inputs(np.ones((4, 3)), SCHEMA)


def test_take_and_concat_rows_keep_dict_inputs_aligned() -> None:
    rows = pd.DataFrame({"x": [1.0, 2.0, 3.0], "z": [0.0, 0.0, 1.0], "color": ["red", "a", "b"]})
    x = to_inputs(rows, SCHEMA)
    part = take_rows(x, [2, 0])
    assert part[NUMERIC_INPUT][:, 0].tolist() == [3.0, 1.0]
    assert [v.decode() for v in part["color"].numpy()[:, 0]] == ["b", "red"]
    both = concat_rows([x, part])
    assert n_rows(both) == 5 and both["color"].shape == (5, 1)


# -- the saved model, loaded by plain Keras ------------------------------------------------------
PLAIN_KERAS = """
import json, sys
import keras, numpy as np, pandas as pd, tensorflow as tf

model = keras.models.load_model(sys.argv[1])  # safe_mode=True by default
rows = pd.read_csv(sys.argv[2], dtype={"color": str})
numeric = rows[["size", "const"]].apply(pd.to_numeric, errors="coerce").to_numpy("float32")
color = rows[["color"]].fillna("(missing)").map(str.strip).to_numpy(object)
out = model.predict({"numeric": numeric, "color": tf.constant(color)}, verbose=0)
print(json.dumps(out.ravel().tolist()))
"""


@pytest.mark.slow
def test_a_saved_model_with_its_head_predicts_raw_rows_in_plain_keras(tmp_path: Path) -> None:
    import keras

    from nnsweep.data.tables import column_kinds
    from nnsweep.tasks import Task
    from nnsweep.train.model import HyperParams, build_model

    rng = np.random.default_rng(0)
    n = 240
    size = rng.normal(10, 3, n)
    color = rng.choice(["red", "green", "blue"], n)
    y = ((size > 10) ^ (color == "red")).astype(np.int32)
    frame = pd.DataFrame({"size": size.round(3).astype(object), "const": 4.0, "color": color})
    frame.loc[::13, "size"] = "?"
    frame.loc[::11, "color"] = None
    schema = fit_schema(frame, column_kinds(frame))
    assert [c.kind for c in schema.columns] == ["numeric", "numeric", "categorical"]
    keras.utils.set_random_seed(0)
    hp = HyperParams(n_layers=1, units=(16,), learning_rate=0.02, batch_size=32, epochs=25)
    model = build_model(hp, task=Task("binary", 2), schema=schema)
    fit = model.fit(to_inputs(frame, schema), y, epochs=25, batch_size=32, verbose=0)
    assert fit.history["accuracy"][-1] > 0.9  # it learnt the interaction through the head
    path = tmp_path / "model.keras"
    model.save(path)
    modules = {layer["module"] for layer in _config_layers(path)}
    assert all(m.startswith("keras") for m in modules), modules  # no custom classes

    rows = pd.DataFrame(
        {
            "size": ["12.5", "", "7", "abc", "9"],
            "const": [4, 4, 4, 4, 1e30],
            "color": ["red", "purple", None, " blue", "green"],
            "label": [1, 0, 1, 0, 1],  # a target column in the rows is ignored
        }
    )
    rows_csv = tmp_path / "rows.csv"
    rows.to_csv(rows_csv, index=False)
    ours = model.predict(to_inputs(pd.read_csv(rows_csv, dtype={"color": str}), schema), verbose=0)
    assert np.isfinite(ours).all()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, str(path), str(rows_csv)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(theirs, ours.ravel(), rtol=1e-5, atol=1e-6)


def _config_layers(path: Path) -> list[dict[str, object]]:
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    return list(config["config"]["layers"])


def test_an_array_of_no_rows_gives_inputs_of_no_rows() -> None:
    """Cross-validation leaves an array table's validation split empty: 0 rows of its width
    are inputs of 0 rows, not a reshape error."""
    schema = fit_array_schema(np.array([[1.0, 2.0], [3.0, 4.0]]))
    inputs = to_inputs(np.empty((0, 2)), schema)
    assert all(len(v) == 0 for v in inputs.values())
    with pytest.raises(DataError, match="3 values per row"):
        to_inputs(np.empty((0, 3)), schema)
