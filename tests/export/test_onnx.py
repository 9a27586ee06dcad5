"""`nnsweep export --onnx`: model.onnx answers as model.keras in onnxruntime for every model
family nnsweep builds (digits; tables with missing cells, categorical columns, quantile inputs,
numeric and categorical embeddings), the card carries the difference, and a model holding an op
the converter cannot handle is refused before the test split is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nnsweep.errors import ExportError
from nnsweep.export import onnx as onnx_file
from nnsweep.spec.config import ACTIVATIONS
from tests.conftest import TINY_SWEEP, Stores
from tests.export._study import copy_stores, stores_in

pytest.importorskip("onnxruntime")  # the `onnx` extra, which `dev` installs
pytest.importorskip("tf2onnx")

TABLE_SPACE = {"n_layers": 1, "units": 16, "activation": "relu", "optimizer": "adam",
               "learning_rate": 0.01, "dropout": 0.0}  # fmt: skip
MATCH = 1e-5  # onnxruntime against Keras, largest absolute difference


def _table_csv(root: Path, name: str, colour: bool) -> Path:
    """The synthetic multiclass table (``x3`` with missing cells), with or without its
    categorical ``colour`` column."""
    from tests._tables import make_table

    frame = make_table("multiclass", n=240)
    if not colour:
        frame = frame.drop(columns=["colour"])
    path = root / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def _run(stores: Stores, name: str, spec: dict[str, Any]) -> None:
    from nnsweep.cli.main import main

    path = stores.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **spec}, sort_keys=False), encoding="utf-8")
    assert main(["run", str(path), "--quiet", *stores.args]) == 0


def _table_spec(csv: Path, **space: Any) -> dict[str, Any]:
    return {
        "dataset": {"path": str(csv), "target": "label", "validation": 0.25},
        "trials": 1, "seed": 0, "sampler": "random", "pruner": "none",
        "train": {"epochs": 3, "batch_size": 32},
        "space": {**TABLE_SPACE, **space},
    }  # fmt: skip


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One store with four one-trial studies: digits, a numeric table, a table with a
    categorical column, and a numeric table with quantile inputs."""
    root = tmp_path_factory.mktemp("onnx")
    stores = stores_in(root)
    digits = {**TINY_SWEEP, "trials": 1, "train": {"epochs": 1, "batch_size": 128}}
    _run(stores, "digits", {k: v for k, v in digits.items() if k != "name"})
    numeric = _table_csv(root, "numeric", colour=False)
    colour = _table_csv(root, "colour", colour=True)
    _run(stores, "numeric", _table_spec(numeric))
    _run(stores, "colour", _table_spec(colour))
    _run(stores, "quantile", _table_spec(numeric, input_transform="quantile"))
    csv = {"numeric": numeric, "colour": colour, "quantile": numeric}
    return {"stores": stores, "root": root, "csv": csv}


def _reads(stores: Stores, study: str) -> int:
    import optuna

    from nnsweep.export.ledger import reads

    return len(reads(optuna.load_study(study_name=study, storage=stores.storage)))


def _export(cli: Any, stores: Stores, study: str, out: Path, *more: str) -> Any:
    return cli("export", study, "--out", out, "--onnx", "--no-baseline", *more, *stores.args)


def _both(out: Path, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``model.keras`` and ``model.onnx`` (onnxruntime) of an export folder on inputs ``x``."""
    import keras
    import onnxruntime as ort

    keras_out = keras.saving.load_model(out / "model.keras").predict(x, verbose=0)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: onnx_file._array(x[n]) for n in names} if isinstance(x, dict) else {names[0]: x}
    (onnx_out,) = session.run(["output"], feeds)
    return np.asarray(keras_out), np.asarray(onnx_out)


def _rows(swept: dict[str, Any], study: str, card: dict[str, Any]) -> Any:
    """Rows to compare on: random pixels, or the table's CSV (missing ``x3`` cells) with a
    missing and an unseen ``colour``."""
    import pandas as pd

    from nnsweep.data.features import to_inputs
    from nnsweep.data.modelio import ModelIO

    if study == "digits":
        return np.random.default_rng(0).random((64, 784), dtype=np.float32)
    frame = pd.read_csv(swept["csv"][study])
    assert frame["x3"].isna().sum() > 5
    if "colour" in frame:
        frame.loc[:1, "colour"] = [None, "purple"]
    return to_inputs(frame, ModelIO.from_dict(card["io"], "card").schema)


@pytest.mark.slow
@pytest.mark.parametrize("study", ["digits", "numeric", "colour", "quantile"])
def test_export_writes_an_onnx_file_that_answers_as_keras(swept, cli, study):
    out = swept["root"] / "exports" / study
    result = _export(cli, swept["stores"], study, out)
    assert result.code == 0, result.err
    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    section = card["onnx"]
    assert (out / "model.onnx").is_file() and card["files"]["onnx"] == "model.onnx"
    if study == "digits":
        assert section["inputs"] == [
            {"name": "pixels", "type": "tensor(float)", "shape": [None, 784]}
        ]
    else:
        types = {i["name"]: i["type"] for i in section["inputs"]}
        assert types.pop("numeric") == "tensor(float)"
        assert types == ({"colour": "tensor(string)"} if study == "colour" else {})
    assert 0 <= section["max_abs_diff"] <= MATCH
    assert section["compared_on"].startswith(f"the {card['test']['n']} test rows")
    assert section["converter"].startswith("tf2onnx ") and section["runtime"].startswith("onnxr")
    want, got = _both(out, _rows(swept, study, card))
    assert np.isfinite(got).all() and np.max(np.abs(got - want)) <= MATCH
    markdown = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## ONNX" in markdown and f"{section['max_abs_diff']:.3g}" in markdown
    assert "  onnx: model.onnx, largest difference from Keras" in result.out
    assert _reads(swept["stores"], study) == 1  # the comparison reused the one read


@pytest.mark.slow
def test_a_model_the_converter_cannot_handle_is_refused_before_the_test_read(
    swept, cli, monkeypatch
):
    """Stock tf2onnx (no handlers of ours) on a categorical column: the export stops with one
    line naming the op, before the test split is read and with nothing written."""
    from nnsweep.export import _onnx_ops

    stores = copy_stores(swept["stores"], swept["root"] / "refused")
    before = _reads(stores, "colour")  # 1 once the test above exported it
    monkeypatch.setattr(_onnx_ops, "handlers", lambda model: {})
    out = stores.root / "out"
    result = _export(cli, stores, "colour", out, "--reread-test")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "TensorFlow's LookupTableFindV2" in result.err and "without --onnx" in result.err
    assert not out.exists()
    assert _reads(stores, "colour") == before


# -- no training: untrained models of every family ---------------------------------------------
FAMILIES = {
    "digits": {},
    "digits_selu_batch_norm": {"activation": "selu", "batch_norm": True, "dropout": 0.2},
    "standard": {},
    "quantile": {"input_transform": "quantile"},
    "piecewise_linear": {"numeric_embedding": "piecewise_linear", "embedding_dim": 4},
    "quantile_periodic": {"input_transform": "quantile", "numeric_embedding": "periodic"},
    "categorical_embedding": {"categorical_encoding": "embedding", "embedding_dim": 3},
    "regression": {},
    "binary": {},
}


def _family(name: str) -> tuple[Any, Any, Any]:
    """An untrained model of family ``name``, its contract and inputs: 40 rows, a numeric
    column with missing cells, one categorical column of 12 categories (embedded under
    ``categorical_embedding``) and one of 3, with a missing and an unseen value."""
    import pandas as pd

    from nnsweep.data.features import fit_schema, to_inputs
    from nnsweep.data.modelio import ModelIO, digits_io
    from nnsweep.tasks import Task
    from nnsweep.train.model import HyperParams, build_model

    techniques = FAMILIES[name]
    hp = HyperParams(n_layers=2, units=(8, 6), **techniques)
    rng = np.random.default_rng(1)
    if name.startswith("digits"):
        return build_model(hp), digits_io(), rng.random((40, 784), dtype=np.float32)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.exponential(size=40),
                          "city": rng.choice([f"c{i}" for i in range(12)], 40),
                          "size": rng.choice(["s", "m", "l"], 40)})  # fmt: skip
    frame.loc[::7, "a"] = np.nan
    schema = fit_schema(frame, {"a": "numeric", "b": "numeric", "city": "categorical",
                                "size": "categorical"})  # fmt: skip
    task = {"regression": Task("regression", None), "binary": Task("binary", 2)}.get(
        name, Task("multiclass", 3)
    )
    scale = (100.0, 7.0) if name == "regression" else None
    model = build_model(hp, task=task, schema=schema, target_scale=scale)
    io = ModelIO(task, None, schema, "numeric", schema.width)
    frame.loc[:1, "city"] = [None, "nowhere"]
    return model, io, to_inputs(frame, schema)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_model_family_converts_and_answers_as_keras(name):
    model, io, x = _family(name)
    converted = onnx_file.convert(model, io, f"the {name} model")
    section = onnx_file.check(converted, model, x)
    assert section["file"] == "model.onnx" and section["max_abs_diff"] <= MATCH
    assert section["compared_on"] == "the 40 test rows, against Keras' predictions"
    names = {i["name"] for i in section["inputs"]}
    assert names == ({"pixels"} if name.startswith("digits") else {"numeric", "city", "size"})


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_a_sweep_can_name_converts(activation):
    """gelu (exact, via erfc) included: tf2onnx leaves Erfc unconverted without our handler."""
    from nnsweep.data.modelio import digits_io
    from nnsweep.train.model import HyperParams, build_model

    model = build_model(HyperParams(n_layers=2, units=(8, 6), activation=activation))
    x = np.random.default_rng(2).normal(size=(40, 784)).astype(np.float32)  # both signs
    section = onnx_file.check(onnx_file.convert(model, digits_io(), activation), model, x)
    assert section["max_abs_diff"] <= MATCH


def test_erfinv_handler_follows_tensorflow_over_the_quantile_range():
    """The quantile transform's erfinv, alone: Giles + one Newton step on TensorFlow's
    rounding of x, against tf.math.erfinv on 200,001 points of [-0.998, 0.998]."""
    import keras
    import onnxruntime as ort

    from nnsweep.tasks import Task

    x = np.linspace(-0.998, 0.998, 200_001, dtype=np.float32).reshape(-1, 1)
    inputs = keras.Input((1,), name="x")
    model = keras.Model(inputs, keras.ops.erfinv(inputs))
    io = _plain_io(Task("regression", None), "x", 1)
    converted = onnx_file.convert(model, io, "erfinv")
    session = ort.InferenceSession(converted.data, providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"x": x})
    want = np.asarray(keras.ops.convert_to_numpy(keras.ops.erfinv(x)))
    assert np.max(np.abs(got - want)) <= 2e-6


def _plain_io(task: Any, name: str, width: int) -> Any:
    from nnsweep.data.modelio import ModelIO

    return ModelIO(task, None, None, name, width)


def test_onnx_without_the_optional_packages_is_refused_first(stores, cli, monkeypatch):
    real = onnx_file.metadata.version

    def version(name: str) -> str:
        if name == "onnxruntime":
            raise onnx_file.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(onnx_file.metadata, "version", version)
    with pytest.raises(ExportError, match=r"pip install 'nnsweep\[onnx\]'.*onnxruntime"):
        onnx_file.require()
    out = stores.root / "out"
    result = cli("export", "no-such-study", "--out", out, "--onnx", *stores.args)
    assert result.code == 2 and "nnsweep[onnx]" in result.err
    assert not out.exists() and not (stores.root / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("error", "expected"),
    [("In Node ... Error No Op registered for Igamma with domain_version of 17",
      "the model holds TensorFlow's Igamma, which tf2onnx 1.17.0 (opset 17) leaves in the graph"),
     ("INVALID_GRAPH : something else\nmore",
      "onnxruntime cannot load the model as converted by tf2onnx 1.17.0 (opset 17): INVALID")],
)  # fmt: skip
def test_refusal_names_the_operator_and_its_cause(error, expected):
    message = onnx_file._refusal("the model", "tf2onnx 1.17.0 (opset 17)", error)
    assert expected in message and "\n" not in message and message.startswith("--onnx: ")


def test_card_section_renders_in_markdown_and_summary():
    section = {
        "file": None, "max_abs_diff": 0.25, "compared_on": "the 9 test rows, against Keras'",
        "tolerance": 1e-4, "converter": "tf2onnx 1.17.0 (opset 17)",
        "runtime": "onnxruntime 1.32.0", "output": "output", "refused": "differs by 0.25",
        "inputs": [{"name": "numeric", "type": "tensor(float)", "shape": [None, 3]}],
    }  # fmt: skip
    lines = "\n".join(onnx_file.markdown({"onnx": section}))
    assert "- no file: differs by 0.25" in lines and "`numeric` tensor(float) [rows, 3]" in lines
    assert "0.25 on the 9 test rows" in lines
    assert onnx_file.summary_line({"onnx": section}).startswith("onnx: not written (differs")
    assert onnx_file.markdown({}) == [] and onnx_file.summary_line({}) is None


def test_an_ensemble_of_table_models_converts_with_each_members_lookups():
    """Nested models, as ``--ensemble`` builds them: the lookups are found by their layer names
    inside each member's scope."""
    import keras

    from nnsweep.export.ensemble import Member, average

    first, io, x = _family("standard")
    second, _, _ = _family("categorical_embedding")
    members = [Member(i, 0.5, f"run{i}", m, "test") for i, m in enumerate((first, second))]
    data = type("Data", (), {"task": io.task, "target_scale": None})()
    model = average(members, data)  # type: ignore[arg-type]
    assert sum(isinstance(layer, keras.Model) for layer in model.layers) == 2
    section = onnx_file.check(onnx_file.convert(model, io, "the ensemble"), model, x)
    assert section["file"] == "model.onnx" and section["max_abs_diff"] <= MATCH
