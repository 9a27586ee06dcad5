"""The tabular techniques: their math against NumPy/SciPy, their parameter counts against
Keras, and every one of them through ``model.keras`` into a fresh plain-Keras process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnsweep.data.features import fit_schema, to_inputs
from nnsweep.tasks import Task
from nnsweep.train.model import HyperParams, build_model, count_params

N = 120


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=N)
    x2 = rng.exponential(size=N)
    x2[::17] = np.nan  # imputed with the training median
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "flag": rng.integers(0, 2, N).astype(float),  # two values: one bin
            "city": rng.choice([f"c{i}" for i in range(12)], N),  # many categories
            "size": rng.choice(["s", "m", "l"], N),  # few: stays one-hot
            "y": (x1 + rng.normal(scale=0.5, size=N) > 0).astype(int),
        }
    )


KINDS = {"x1": "numeric", "x2": "numeric", "flag": "numeric", "city": "categorical",
         "size": "categorical"}  # fmt: skip
TECHNIQUES = {
    "quantile": {"input_transform": "quantile"},
    "periodic": {"numeric_embedding": "periodic", "embedding_dim": 4},
    "quantile_periodic": {"input_transform": "quantile", "numeric_embedding": "periodic"},
    "piecewise_linear": {"numeric_embedding": "piecewise_linear", "embedding_dim": 6},
    "categorical_embedding": {"categorical_encoding": "embedding", "embedding_dim": 5},
    "batch_norm": {"batch_norm": True},
    "weight_decay": {"weight_decay": 0.01, "optimizer": "adam"},
    "all": {"input_transform": "quantile", "numeric_embedding": "piecewise_linear",
            "categorical_encoding": "embedding", "batch_norm": True, "weight_decay": 1e-3},
}  # fmt: skip


def _hp(**changes: object) -> HyperParams:
    return HyperParams(n_layers=2, units=(8, 6), dropout=0.1, **changes)  # type: ignore[arg-type]


def test_quantile_normal_matches_the_training_quantiles_through_the_normal_ppf() -> None:
    import keras
    from scipy.stats import norm

    from nnsweep.data.head import numeric_input
    from nnsweep.train.layers import P_CLIP, quantile_normal

    frame = _frame()
    schema = fit_schema(frame, {"x1": "numeric", "x2": "numeric", "flag": "numeric"})
    raw, filled = numeric_input(schema)
    model = keras.Model(raw, quantile_normal(filled, schema.numeric))
    new = _frame(seed=1)
    x = to_inputs(new, schema)["numeric"]
    got = model.predict(x, verbose=0)
    for j, column in enumerate(schema.numeric):
        values = np.where(np.isfinite(x[:, j]), x[:, j], column.median)
        q = np.asarray(column.quantiles)
        p = np.interp(values, q, np.linspace(0, 1, len(q))) if len(q) > 1 else 0.5
        want = norm.ppf(np.clip(p, P_CLIP, 1 - P_CLIP))
        np.testing.assert_allclose(got[:, j], want, atol=2e-4)
    # a column of two values (0/1) has one bin: its two values sit at the ends
    ends = norm.ppf([P_CLIP, 1 - P_CLIP])
    np.testing.assert_allclose(np.unique(got[:, 2]), ends, atol=2e-4)


def test_piecewise_linear_encoding_is_the_share_of_each_bin_below_the_value() -> None:
    import keras

    from nnsweep.data.head import numeric_input
    from nnsweep.train.layers import bin_fractions

    schema = fit_schema(_frame(), {"x1": "numeric", "flag": "numeric"})
    raw, filled = numeric_input(schema)
    model = keras.Model(raw, bin_fractions(filled, schema.numeric))
    q = np.asarray(schema.numeric[0].quantiles)
    value = (q[3] + q[4]) / 2  # halfway through the fourth bin
    got = model.predict(np.array([[value, 1.0]], np.float32), verbose=0)[0]
    n_bins = len(q) - 1
    want = np.r_[np.ones(3), 0.5, np.zeros(n_bins - 4)]
    np.testing.assert_allclose(got[0, :n_bins], want, atol=1e-5)
    assert got[1, 0] == pytest.approx(1.0) and not got[1, 1:].any()  # flag: one bin, then pads


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_count_params_matches_the_trainable_weights(name: str) -> None:
    schema = fit_schema(_frame(), KINDS)
    hp = _hp(**TECHNIQUES[name])
    model = build_model(hp, task=Task("binary", 2), schema=schema)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert count_params(hp, output_units=1, schema=schema) == trainable


def test_table_techniques_need_a_table() -> None:
    with pytest.raises(ValueError, match="input_transform needs a table"):
        build_model(_hp(input_transform="quantile"))


PLAIN_KERAS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np, keras, tensorflow as tf
    folder = Path(sys.argv[1])
    for name in sys.argv[2:]:  # each model as if alone: its load imports and registers nothing
        try:
            model = keras.saving.load_model(folder / f"{name}.keras", safe_mode=True)
            assert not any(m.split(".")[0] == "nnsweep" for m in sys.modules), "nnsweep imported"
            assert not keras.saving.get_custom_objects(), keras.saving.get_custom_objects()
            data = np.load(folder / f"{name}.npz")
            inputs = {k: (tf.constant(v.astype(object)) if v.dtype.kind == "U" else v)
                      for k, v in data.items()}
            np.save(folder / f"{name}.npy", model.predict(inputs, verbose=0))
        except Exception as error:
            (folder / f"{name}.error").write_text(repr(error))
            raise SystemExit(f"{name}: {error!r}")  # the later models were not loaded alone
    """
)


@pytest.fixture(scope="module")
def fresh_predictions(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[np.ndarray, Path]]:
    """Per technique: a model trained here and its predictions on unseen rows, and where a
    fresh plain-Keras process (one for all of them) wrote its own predictions, or its error."""
    folder = tmp_path_factory.mktemp("plain_keras")
    frame = _frame()
    schema = fit_schema(frame, KINDS)
    new = to_inputs(_frame(seed=2), schema)  # rows the model never saw, with missing values
    arrays = {k: (np.asarray(v) if isinstance(v, np.ndarray) else v.numpy().astype(str))
              for k, v in new.items()}  # fmt: skip
    x = to_inputs(frame, schema)
    out: dict[str, tuple[np.ndarray, Path]] = {}
    for name, technique in TECHNIQUES.items():
        model = build_model(_hp(**technique), task=Task("binary", 2), schema=schema)
        model.fit(x, frame["y"].to_numpy(np.float32), epochs=2, batch_size=32, verbose=0)
        model.save(folder / f"{name}.keras")
        np.savez(folder / f"{name}.npz", **arrays)
        out[name] = (model.predict(new, verbose=0), folder / name)
    script = folder / "load.py"
    script.write_text(PLAIN_KERAS, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(folder), *TECHNIQUES],
        cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # a failure: the .error file of the model it stopped at, no .npy after it, and its stderr
    (folder / "stderr.txt").write_text(proc.stderr[-3000:], encoding="utf-8")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_model_keras_loads_in_a_fresh_plain_keras_process(
    name: str, fresh_predictions: dict[str, tuple[np.ndarray, Path]]
) -> None:
    want, base = fresh_predictions[name]
    error = base.with_suffix(".error")
    assert not error.exists(), error.read_text()
    assert base.with_suffix(".npy").exists(), (base.parent / "stderr.txt").read_text()
    np.testing.assert_array_equal(np.load(base.with_suffix(".npy")), want)
