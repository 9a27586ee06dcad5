"""The model-logging step: which trials keep their model, and that a storage failure is a tag,
not a failed trial. Real MLflow (SQLite), a real Optuna study and a real (untrained) Keras
model; no training."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import TINY_SWEEP, Stores


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    """One MLflow SQLite store for the module (creating one costs seconds)."""
    root = tmp_path_factory.mktemp("modelstore")
    return Stores(root, f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")


def _logger_and_run(store: Stores, **changes: Any) -> tuple[Any, Any, str]:
    """A ModelLogger for the tiny sweep with ``changes``, and a fresh child run to log on."""
    from nnsweep.spec.config import SweepSpec
    from nnsweep.track.tracker import Tracker
    from nnsweep.train.modellog import ModelLogger

    spec = SweepSpec.model_validate({**TINY_SWEEP, **changes})
    tracker = Tracker(store.tracking_uri, spec.name)
    parent = tracker.start_parent(spec.name, tags={}, params={})
    run_id = tracker.start_trial(parent, spec.name, 0, {})
    from nnsweep.data.modelio import digits_io

    return ModelLogger(spec, tracker, digits_io()), tracker, run_id


def _result(run_id: str, metric: str, value: float, state: str) -> Any:
    """A trial's result as the Objective sets it: the value only for a COMPLETE trial."""
    import numpy as np

    from nnsweep.train.model import HyperParams, build_model
    from nnsweep.train.result import TrialResult

    hp = HyperParams(n_layers=1, units=(8,), epochs=2)
    other = "val_loss" if metric == "val_accuracy" else "val_accuracy"
    history = {"loss": [1.0, 0.9], metric: [value, value], other: [0.5, 0.5]}
    example = np.random.default_rng(0).random((2, 784), dtype=np.float32)
    return TrialResult(
        0,
        run_id,
        hp,
        example,
        history=history,
        state=state,
        value=value if state == "COMPLETE" else None,
        model=build_model(hp),
    )


CASES = [
    # mode, state, metric, best COMPLETE value before, this trial's value, logged?
    ("best", "COMPLETE", "val_accuracy", None, 0.7, True),
    ("best", "COMPLETE", "val_accuracy", 0.6, 0.7, True),
    ("best", "COMPLETE", "val_accuracy", 0.7, 0.7, True),  # a tie keeps its model too
    ("best", "COMPLETE", "val_accuracy", 0.8, 0.7, False),
    ("best", "COMPLETE", "val_loss", 0.5, 0.4, True),
    ("best", "COMPLETE", "val_loss", 0.3, 0.4, False),
    ("best", "PRUNED", "val_accuracy", None, 0.7, False),
    ("all", "COMPLETE", "val_accuracy", 0.8, 0.7, True),
    ("all", "PRUNED", "val_accuracy", 0.8, 0.7, True),
    ("all", "FAIL", "val_accuracy", None, 0.7, False),
    ("none", "COMPLETE", "val_accuracy", None, 0.7, False),
]


@pytest.mark.parametrize(("mode", "state", "metric", "before", "value", "logged"), CASES)
def test_which_trials_keep_their_model(store, mode, state, metric, before, value, logged):
    import optuna

    step, tracker, run_id = _logger_and_run(store, log_models=mode, objective=metric)
    direction = "maximize" if metric == "val_accuracy" else "minimize"
    study = optuna.create_study(direction=direction)
    if before is not None:
        study.tell(study.ask(), before)
    trial = study.ask()

    step(trial, _result(run_id, metric, value, state))

    tags = tracker.client.get_run(run_id).data.tags
    assert ("nnsweep.model_uri" in tags) == logged
    assert "nnsweep.model_error" not in tags
    if logged:
        uri = tags["nnsweep.model_uri"]
        assert trial.user_attrs["nnsweep.model_uri"] == uri
        model = tracker.client.get_logged_model(uri.removeprefix("models:/"))
        assert model.source_run_id == run_id and model.status.name == "READY"
        assert model.params["units_0"] == "8"


def test_logged_model_round_trips_through_keras(store, tmp_path):
    import keras
    import numpy as np
    import optuna

    from nnsweep.track.models import download_model
    from nnsweep.train.modellog import MLFLOW_KERAS_FILE

    step, tracker, run_id = _logger_and_run(store)

    trial = optuna.create_study(direction="maximize").ask()
    result = _result(run_id, "val_accuracy", 0.7, "COMPLETE")
    step(trial, result)
    uri = tracker.client.get_run(run_id).data.tags["nnsweep.model_uri"]
    local = download_model(uri, tmp_path, store.tracking_uri)
    loaded = keras.saving.load_model(local / MLFLOW_KERAS_FILE)
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), result.model.predict(x, verbose=0))


def test_storage_failure_is_a_tag_not_a_failed_trial(store):
    """If the artifact store cannot take the model, the trial keeps its result; the run says
    why, and export will point at --retrain."""
    import optuna

    # The sweep "broken" gets its artifacts under mlruns/broken, which is a file here.
    (store.root / "mlruns").mkdir(exist_ok=True)
    (store.root / "mlruns" / "broken").write_text("a file where the artifact folder should be")
    step, tracker, run_id = _logger_and_run(store, name="broken")
    trial = optuna.create_study(direction="maximize").ask()

    step(trial, _result(run_id, "val_accuracy", 0.7, "COMPLETE"))

    tags = tracker.client.get_run(run_id).data.tags
    assert "nnsweep.model_uri" not in tags
    assert tags["nnsweep.model_error"].split(":")[0] in {
        "FileExistsError", "NotADirectoryError", "OSError", "MlflowException"
    }  # fmt: skip


def test_table_model_logs_its_io_and_signature_and_predicts_by_uri(store, tmp_path):
    """A table's model (named inputs, one of them text) is logged as a pyfunc whose signature
    is the table's own columns with their types, with a raw-row input example and
    nnsweep_io.json; `load_predictor("models:/…")` reads it back with the same task, labels
    and columns and predicts as the model does, and MLflow's pyfunc answers original labels."""
    import numpy as np
    import pandas as pd
    from mlflow.models import Model

    from nnsweep.data.features import fit_schema, take_rows, to_inputs
    from nnsweep.data.modelio import ModelIO
    from nnsweep.predict.loader import load_predictor
    from nnsweep.tasks import Task
    from nnsweep.track.models import download_model
    from nnsweep.train.model import HyperParams, build_model
    from nnsweep.train.modellog import IO_FILE, log_keras_model

    step, tracker, run_id = _logger_and_run(store, name="table")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.normal(size=20), "kind": ["a", "b"] * 10})
    schema = fit_schema(frame, {"size": "numeric", "kind": "categorical"})
    task = Task("binary", 2)
    model = build_model(HyperParams(n_layers=1, units=(4,)), task=task, schema=schema)
    io = ModelIO(task, ("no", "yes"), schema, "pixels", schema.width, "label")
    inputs = to_inputs(frame, schema)
    uri = log_keras_model(tracker.client, tracker.experiment_id, run_id, model,
                          input_example=take_rows(inputs, [0, 1]), io=io)  # fmt: skip

    local = download_model(uri, tmp_path, store.tracking_uri)
    meta = Model.load(local / "MLmodel")
    assert [(s.name, str(s.type)) for s in meta.signature.inputs.inputs] == [
        ("size", "Any"), ("kind", "DataType.string")
    ]  # fmt: skip
    assert meta.flavors["python_function"]["loader_module"] == "nnsweep.track.pyfunc"
    assert ModelIO.from_dict(json.loads((local / IO_FILE).read_text()), "io") == io
    loaded = load_predictor(uri, store.tracking_uri)
    assert loaded.io == io
    np.testing.assert_allclose(loaded(inputs), model.predict(inputs, verbose=0), atol=1e-6)

    import mlflow.pyfunc

    served = mlflow.pyfunc.load_model(str(local)).predict(frame)
    p_yes = model.predict(inputs, verbose=0)[:, 0]
    assert list(served["prediction"]) == ["yes" if p >= 0.5 else "no" for p in p_yes]
    np.testing.assert_allclose([d["yes"] for d in served["probabilities"]], p_yes, atol=1e-6)
