"""Best-model logging during a sweep, `nnsweep export`, and the registry round trip.

One real tiny sweep (3 trials of 2 epochs on mnist_5k) and one export with --register are
shared by the module; the end-to-end test then checks that model.keras in a fresh process (plain
Keras, no nnsweep), ``nnsweep predict`` and the registry's pyfunc model agree on the same
inputs, and that the card's test accuracy is what a fresh evaluation measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import TINY_SWEEP, Stores

REGISTERED = "tiny-mlp"


def _stores(root: Path) -> Stores:
    return Stores(root, f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished 3-trial sweep and its export (registered as tiny-mlp@champion)."""
    from nnsweep.cli.main import main

    root = tmp_path_factory.mktemp("export")
    stores = _stores(root)
    sweep = root / "tiny.yaml"
    sweep.write_text(yaml.safe_dump({**TINY_SWEEP, "trials": 3}), encoding="utf-8")
    assert main(["run", str(sweep), "--quiet", *stores.args]) == 0
    out = root / "exports" / "tiny"
    code = main(["export", "tiny", "--out", str(out), "--register", REGISTERED, *stores.args])
    assert code == 0
    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    return {"stores": stores, "out": out, "card": card}


@pytest.fixture
def client(exported: dict[str, Any]) -> Any:
    from mlflow import MlflowClient

    uri = exported["stores"].tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def study(exported: dict[str, Any]) -> Any:
    from nnsweep.study.storage import load_study

    return load_study("tiny", exported["stores"].storage)


@pytest.fixture
def mlflow_uri(exported: dict[str, Any]) -> Iterator[str]:
    """Point MLflow's global URIs at the sweep's store (as a user's MLFLOW_TRACKING_URI would)."""
    import mlflow

    uri = exported["stores"].tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_registry_uri(None)
        mlflow.set_tracking_uri(None)


def _test_split() -> tuple[np.ndarray, np.ndarray]:
    from nnsweep.data.load import load_raw

    (_, _, x_test, y_test), _ = load_raw("mnist_5k")
    return np.asarray(x_test, dtype=np.uint8), np.asarray(y_test)


# -- during the sweep -------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_logs_a_model_exactly_for_each_new_best(exported, study, client):
    """With log_models: best, a COMPLETE trial has a model iff it tied or beat every COMPLETE
    trial before it; the others store none."""
    from optuna.trial import TrialState

    best_so_far = None
    logged, skipped = [], []
    for trial in sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        run = client.get_run(trial.user_attrs["nnsweep.mlflow_run_id"])
        uri = run.data.tags.get("nnsweep.model_uri")
        is_new_best = best_so_far is None or trial.value >= best_so_far
        assert (uri is not None) == is_new_best, (trial.number, trial.value, best_so_far)
        assert trial.user_attrs.get("nnsweep.model_uri") == uri
        (logged if uri else skipped).append(trial.number)
        best_so_far = trial.value if best_so_far is None else max(best_so_far, trial.value)
    assert study.best_trial.number in logged
    assert skipped, "seeded sweep should have a trial that is not a new best"


@pytest.mark.slow
def test_logged_model_has_signature_and_input_example(exported, client, tmp_path):
    from mlflow.models import Model

    from nnsweep.track.models import download_model

    run_id = exported["card"]["mlflow"]["run_id"]
    uri = client.get_run(run_id).data.tags["nnsweep.model_uri"]
    local = download_model(uri, tmp_path, exported["stores"].tracking_uri)
    meta = Model.load(Path(local) / "MLmodel")
    # a pyfunc whose loader is nnsweep's row model: pixel rows in, labels and probabilities out
    assert set(meta.flavors) == {"python_function"}
    assert meta.flavors["python_function"]["loader_module"] == "nnsweep.track.pyfunc"
    # no input schema: MLflow would refuse 0-255 CSVs and 28x28 arrays by dtype and shape;
    # the model checks pixel rows itself (tests/e2e/test_serving.py serves both)
    assert meta.signature.inputs is None
    assert meta.signature.outputs.input_names() == ["prediction", "probability", "probabilities"]
    example = meta.load_input_example(local)
    assert example.shape == (2, 784) and 0.0 <= example.min() and example.max() <= 1.0
    assert meta.run_id == run_id
    logged = client.get_logged_model(uri.removeprefix("models:/"))
    assert logged.source_run_id == run_id
    assert logged.tags["nnsweep.trial"] == str(exported["card"]["trial"])


# -- export -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_card_describes_the_best_trial(exported, study, client):
    card, out = exported["card"], exported["out"]
    best = study.best_trial
    run = client.get_run(best.user_attrs["nnsweep.mlflow_run_id"])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.keras", "saved_model", "model_card.json", "MODEL_CARD.md"]
    )
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert card["study"] == "tiny" and card["trial"] == best.number
    assert card["mlflow"]["run_id"] == run.info.run_id
    assert card["mlflow"]["model_uri"] == run.data.tags["nnsweep.model_uri"]
    assert card["params"] == best.user_attrs["nnsweep.params"]
    assert card["objective"]["value"] == pytest.approx(best.value)
    # Every validation figure on the card is taken at one epoch, that of the exported weights.
    at = card["validation"]["at_weights_epoch"]
    assert at["val_accuracy"] == pytest.approx(best.value)

    import keras

    model = keras.saving.load_model(out / "model.keras")
    assert card["parameter_count"] == model.count_params()

    test = card["test"]
    matrix = np.array(test["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == test["n"] == 1000
    assert test["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    # Cell by cell, rows the true digit and columns the predicted one: counted here from the
    # exported model's own predictions. The matrix is not symmetric, so a transposed one fails.
    x_test, y_test = _test_split()
    predicted = model.predict(x_test.reshape(-1, 784) / np.float32(255.0), verbose=0).argmax(1)
    expected = np.zeros((10, 10), dtype=np.int64)
    for true, guess in zip(y_test, predicted, strict=True):
        expected[true, guess] += 1
    assert (expected != expected.T).any()
    np.testing.assert_array_equal(matrix, expected)
    assert card["dataset"]["name"] == "mnist_5k"
    assert card["dataset"]["sizes"] == {"train": 3600, "val": 400, "test": 1000}
    assert {"python", "keras", "mlflow", "optuna", "numpy", "nnsweep"} <= set(card["versions"])
    assert card["retrain"] is None

    # The fit diagnosis is whatever the diagnosis step wrote on the run.
    assert card["diagnosis"]["fit"] == run.data.tags.get("nnsweep.fit")
    for key, value in card["diagnosis"]["metrics"].items():
        assert run.data.metrics[key] == pytest.approx(value)

    # Test metrics went to the best trial's run; the registry holds the run's logged model.
    assert run.data.metrics["test_accuracy"] == pytest.approx(test["accuracy"])
    assert run.data.metrics["test_loss"] == pytest.approx(test["loss"])
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert card["registry"] == {
        "name": REGISTERED,
        "version": int(version.version),
        "alias": "champion",
        "uri": f"models:/{REGISTERED}@champion",
        "source": run.data.tags["nnsweep.model_uri"],
    }
    assert version.run_id == run.info.run_id
    uri = run.data.tags["nnsweep.model_uri"]
    assert version.tags["nnsweep.model_uri"] == uri
    assert version.source == client.get_logged_model(uri.removeprefix("models:/")).artifact_location

    # 95 % Wilson interval around the accuracy, from the confusion matrix's counts.
    from nnsweep.export.card import test_headline, validation_line
    from nnsweep.export.intervals import wilson

    low, high = test["accuracy_ci95"]
    assert low < test["accuracy"] < high
    assert (low, high) == pytest.approx(wilson(int(np.trace(matrix)), 1000))
    assert test["labels"] == list(range(10))
    assert test["baseline"]["accuracy"] == pytest.approx(0.1)  # 100 test images per digit
    assert card["task"]["kind"] == "multiclass" and card["task"]["labels"] == list(range(10))
    assert card["io"]["input_name"] == "pixels" and card["io"]["input_width"] == 784
    assert card["validation"]["n"] == 400 and card["validation"]["trials"] == 3
    page = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert test_headline(test, "images") in page
    assert f"accuracy {test['accuracy']:.4f} [{low:.4f}, {high:.4f}]" in page
    assert "28x28" in page and "784 → " in page
    line = validation_line(card)
    assert line in page and "on 400 validation images, an optimistic estimate" in line
    assert f"trial #{best.number}" in page and run.info.run_id in page


FRESH_PROCESS = """
import json, sys
import keras, numpy as np, tensorflow as tf
model = keras.saving.load_model(sys.argv[1] + "/model.keras", safe_mode=True)
inputs = np.load(sys.argv[2]).reshape(-1, 784).astype("float32") / 255.0
x_test = np.load(sys.argv[3]).reshape(-1, 784).astype("float32") / 255.0
y_test = np.load(sys.argv[4])
served = tf.saved_model.load(sys.argv[1] + "/saved_model")
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
np.save(sys.argv[5], model.predict(inputs, verbose=0))
np.save(sys.argv[6], served.serve(tf.constant(inputs)).numpy())
print(json.dumps({"accuracy": float(accuracy), "loss": float(loss),
                  "nnsweep_imported": any(m.startswith("nnsweep") for m in sys.modules)}))
"""


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_uri")
def test_keras_file_predict_and_registry_agree(exported, cli, tmp_path):
    """The done-criterion: plain Keras in a fresh process, the SavedModel, `nnsweep predict`
    and mlflow.pyfunc on models:/tiny-mlp@champion give the same probabilities; the card's
    test accuracy is what a fresh model.evaluate measures."""
    import mlflow.pyfunc

    x_test, y_test = _test_split()
    digits = tmp_path / "digits.npy"
    np.save(digits, x_test[:64].reshape(-1, 28, 28))
    np.save(tmp_path / "x_test.npy", x_test)
    np.save(tmp_path / "y_test.npy", y_test)
    keras_out, served_out = tmp_path / "keras.npy", tmp_path / "served.npy"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, str(exported["out"]), str(digits),
         str(tmp_path / "x_test.npy"), str(tmp_path / "y_test.npy"), str(keras_out),
         str(served_out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh["nnsweep_imported"] is False
    plain = np.load(keras_out)
    np.testing.assert_allclose(np.load(served_out), plain, atol=1e-5)

    card = exported["card"]
    assert card["test"]["accuracy"] == pytest.approx(fresh["accuracy"], abs=1e-6)
    # Keras' own evaluate: cross-entropy from the softmax's logits, not clipped probabilities
    assert card["test"]["loss"] == pytest.approx(fresh["loss"], rel=1e-5)

    result = cli("predict", exported["out"], digits, "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    np.testing.assert_allclose([r["probabilities"] for r in rows], plain, atol=1e-5)
    assert [r["class"] for r in rows] == plain.argmax(axis=1).tolist()

    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED}@champion")
    frame = pyfunc.predict(x_test[:64].astype(np.float32) / 255.0)
    registry = np.array([[row[str(k)] for k in range(10)] for row in frame["probabilities"]])
    np.testing.assert_allclose(registry, plain, atol=1e-5)
    assert frame["prediction"].tolist() == plain.argmax(axis=1).tolist()


@pytest.mark.slow
def test_predict_from_the_registry_uses_the_given_store(exported, cli, tmp_path, monkeypatch):
    """`nnsweep predict models:/NAME@champion --tracking-uri URI` reads URI's registry, even
    with MLflow's global URI unset (MLflow's own models:/ lookup would use ./mlflow.db)."""
    import keras

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    x_test, _ = _test_split()
    digits = tmp_path / "digits.npy"
    np.save(digits, x_test[:16])
    uri = exported["stores"].tracking_uri
    result = cli("predict", f"models:/{REGISTERED}@champion", digits, "--json",
                 "--tracking-uri", uri)  # fmt: skip
    assert result.code == 0, result.err
    model = keras.saving.load_model(exported["out"] / "model.keras")
    plain = model.predict(x_test[:16].astype(np.float32) / 255.0, verbose=0)
    np.testing.assert_allclose([r["probabilities"] for r in json.loads(result.out)], plain,
                               atol=1e-5)  # fmt: skip
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (f"models:/{REGISTERED}@nope", "not found in sqlite:///"),
        (f"models:/{REGISTERED}/99", "not found in sqlite:///"),
        (f"models:/{REGISTERED}", "not an MLflow model URI; use models:/NAME@ALIAS"),
    ],
)
def test_predict_with_a_bad_registry_uri_is_one_line(exported, cli, tmp_path, model, expected):
    digits = tmp_path / "one.npy"
    np.save(digits, np.zeros((28, 28), dtype=np.uint8))
    result = cli("predict", model, digits, "--tracking-uri", exported["stores"].tracking_uri)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err


@pytest.mark.slow
def test_retrain_refits_on_train_and_validation(exported, cli, client, tmp_path):
    """--retrain refits the best params on train+validation for the trial's epochs, records it
    in the card, logs retrained_test_* (the sweep model's test_* stay), and --register moves
    champion to a new version whose model is the refit one."""
    stores, card = exported["stores"], exported["card"]
    out = tmp_path / "retrained"
    out.mkdir()
    (out / "old.txt").write_text("left over", encoding="utf-8")
    (out / "model_card.json").write_text(json.dumps(card), encoding="utf-8")  # an earlier export
    try:
        result = cli("export", "tiny", "--out", out, "--retrain", "--force", "--register",
                     REGISTERED, "--json", "--reread-test", *stores.args)  # fmt: skip
        champion = client.get_model_version_by_alias(REGISTERED, "champion")
    finally:  # the other tests expect champion to be the sweep's model
        client.set_registered_model_alias(REGISTERED, "champion", card["registry"]["version"])
    assert result.code == 0, result.err
    new = json.loads(result.out)["card"]
    assert json.loads((out / "model_card.json").read_text(encoding="utf-8")) == new
    # --force replaces the export's own files and leaves anything else in the folder alone.
    assert (out / "model.keras").is_file() and (out / "old.txt").read_text() == "left over"
    assert new["trial"] == card["trial"]
    assert new["retrain"]["train_size"] == 4000
    # as many epochs as the exported weights saw (a case where that is not the budget: below)
    assert new["retrain"]["epochs"] == new["weights"]["epoch"] == card["weights"]["epoch"]
    assert new["weights"]["source"] == "retrained on train+validation"
    assert new["test"]["accuracy"] > 0.5

    run = client.get_run(card["mlflow"]["run_id"])
    # one export logs one set of test metrics: the latest read's, under the same keys
    assert "retrained_test_accuracy" not in run.data.metrics
    assert run.data.metrics["test_accuracy"] == pytest.approx(new["test"]["accuracy"])
    assert new["test_reads"]["count"] == 2
    assert int(champion.version) == new["registry"]["version"] == card["registry"]["version"] + 1
    assert new["registry"]["source"] != card["mlflow"]["model_uri"]
    assert champion.tags["nnsweep.model_uri"] == new["registry"]["source"]
    retrained = client.get_logged_model(new["registry"]["source"].removeprefix("models:/"))
    assert retrained.name == "model-retrained" and champion.source == retrained.artifact_location


@pytest.mark.slow
def test_retrain_fits_as_many_epochs_as_the_restored_weights_saw(
    stores, write_sweep, cli, tmp_path
):
    """Early stopping restores the best epoch: neither the epoch budget nor the epochs the
    trial ran. --retrain refits exactly that many epochs, read here from the run's curve."""
    from mlflow import MlflowClient

    budget = 8
    sweep = write_sweep(
        "stopped",
        trials=1,
        train={"epochs": budget, "batch_size": 128, "early_stopping": {"patience": 1}},
        space={"n_layers": 1, "units": 16, "activation": "relu", "learning_rate": 0.05},
    )
    assert cli("run", sweep, "--quiet", *stores.args).code == 0
    result = cli("export", "stopped", "--out", tmp_path / "x", "--retrain", "--json",
                 *stores.args)  # fmt: skip
    assert result.code == 0, result.err
    card = json.loads(result.out)["card"]
    history = MlflowClient(stores.tracking_uri).get_metric_history(
        card["mlflow"]["run_id"], "val_accuracy"
    )
    curve = [m.value for m in sorted(history, key=lambda m: m.step)]
    restored = 1 + curve.index(max(curve))  # Keras keeps the first epoch of the best value
    assert card["weights"]["epoch"] == card["retrain"]["epochs"] == restored
    assert card["weights"]["source"] == "retrained on train+validation"


# -- refusals ---------------------------------------------------------------------------------
def _refusal(case: str, root: Path, stores: Stores) -> tuple[list[Any], str]:
    """Case name → (export arguments, text the one-line error must hold)."""
    full = root / "full"
    full.mkdir(exist_ok=True)
    (full / "keep.txt").write_text("mine", encoding="utf-8")
    a_file = root / "a_file"
    a_file.write_text("x", encoding="utf-8")
    cases = {
        "non-empty out": (["tiny", "--out", full], "folder is not empty; pass --force"),
        "out is a file": (["tiny", "--out", a_file], "is a file, not a folder"),
        "out under a file": (["tiny", "--out", a_file / "sub"], "is a file, not a folder"),
        "no complete trial": (["empty", "--out", root / "e"], "has no COMPLETE trial"),
        "unknown study": (["nope", "--out", root / "n"], "no study 'nope'"),
        "bad registry name": (
            ["tiny", "--out", root / "r", "--register", "a/b"],
            "--register 'a/b': a registered model name",
        ),
    }
    args, expected = cases[case]
    return [*args, *stores.args], expected


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    ["non-empty out", "out is a file", "out under a file", "no complete trial", "unknown study",
     "bad registry name"],
)  # fmt: skip
def test_export_refuses_with_one_line(exported, cli, tmp_path, case):
    import optuna

    stores = exported["stores"]
    optuna.create_study(study_name="empty", storage=stores.storage, load_if_exists=True)
    args, expected = _refusal(case, tmp_path, stores)
    result = cli("export", *args)
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnsweep: error: "), result.err
    assert expected in lines[0]
    assert not (tmp_path / "full" / "model.keras").exists()


@pytest.mark.slow
def test_export_needs_a_logged_model_or_retrain(exported, cli, client, tmp_path):
    """A best run without a logged model (log_models: none) is refused with the fix, and
    leaves --out untouched."""
    run_id = exported["card"]["mlflow"]["run_id"]
    uri = client.get_run(run_id).data.tags["nnsweep.model_uri"]
    client.delete_tag(run_id, "nnsweep.model_uri")
    try:
        result = cli("export", "tiny", "--out", tmp_path / "x", "--reread-test",
                     *exported["stores"].args)  # fmt: skip
    finally:
        client.set_tag(run_id, "nnsweep.model_uri", uri)
    assert result.code == 2
    assert "has no nnsweep.model_uri tag" in result.err and "--retrain" in result.err
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_tracking_store_is_refused(stores, cli, tmp_path):
    from nnsweep.errors import StorageError
    from nnsweep.export.export import export_best

    with pytest.raises(StorageError, match=r"mlflow\.db does not exist; pass the --tracking-uri"):
        export_best("tiny", out=tmp_path / "o", storage_url=stores.storage,
                    tracking_uri=stores.tracking_uri)  # fmt: skip
    assert not (stores.root / "mlflow.db").exists()


def test_export_help_lists_its_options(cli):
    result = cli("export", "--help")
    assert result.code == 0
    for option in ("--out", "--register", "--retrain", "--force", "--json"):
        assert option in result.out
    # the help states auto's threshold as a literal (importing it would load pydantic for --help)
    from nnsweep.export.ensemble import AUTO_BELOW

    assert f"fewer than {AUTO_BELOW:,} training rows" in " ".join(result.out.split())
