"""Registry models that carry code: refused, and the code they carry never runs.

Every hostile case also proves that it is hostile (the code it carries does run when loaded
the unsafe way), so a refusal is not an accident of a broken fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]


def _marker_model(marker: Path) -> Any:
    """A pyfunc PythonModel whose loader writes ``marker``: code shipped with a model."""
    import mlflow.pyfunc

    class WritesMarker(mlflow.pyfunc.PythonModel):
        def __init__(self, path: str) -> None:
            self.path = path

        def load_context(self, context: Any) -> None:
            Path(self.path).write_text("code from the model ran", encoding="utf-8")

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    return WritesMarker(str(marker))


@pytest.fixture
def registered_pyfunc(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path]]:
    """``models:/evil@champion``: a pyfunc model registered in the test store; its marker."""
    import mlflow
    from mlflow import MlflowClient

    marker = tmp_path / "marker.txt"
    # a SQLite store's default artifact root is ./mlruns: the model's files go to tmp_path
    monkeypatch.chdir(tmp_path)
    # set_registry_uri(None) leaves MLFLOW_REGISTRY_URI in os.environ: monkeypatch removes it
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", stores.tracking_uri)
    mlflow.set_tracking_uri(stores.tracking_uri)
    mlflow.set_registry_uri(stores.tracking_uri)
    try:
        info = mlflow.pyfunc.log_model(
            name="evil", python_model=_marker_model(marker), pip_requirements=[]
        )
        version = mlflow.register_model(info.model_uri, "evil")
        client = MlflowClient(stores.tracking_uri, registry_uri=stores.tracking_uri)
        client.set_registered_model_alias("evil", "champion", version.version)
    finally:
        mlflow.set_registry_uri(None)
        mlflow.set_tracking_uri(None)
    assert not marker.exists()
    yield "models:/evil@champion", marker


def test_registered_pyfunc_model_is_refused_and_its_code_never_runs(
    cli: Cli, stores: Stores, registered_pyfunc: tuple[str, Path], tmp_path: Path
) -> None:
    uri, marker = registered_pyfunc
    digits = tmp_path / "x.npy"
    np.save(digits, np.zeros((2, 28, 28), dtype=np.uint8))

    result = cli("predict", uri, digits, "--tracking-uri", stores.tracking_uri)

    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "python_function" in lines[0] and uri in lines[0], result.err
    assert not marker.exists()
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in os.environ  # restored after the load

    # The fixture is hostile indeed: MLflow's own loader runs the model's code.
    import mlflow.pyfunc

    from nnsweep.track.models import download_model

    local = download_model(uri, tmp_path / "copy", stores.tracking_uri)
    mlflow.pyfunc.load_model(str(local))
    assert marker.read_text(encoding="utf-8") == "code from the model ran"


def _save_keras_flavour(folder: Path, model: Any = None) -> Path:
    """A model folder as ``mlflow.keras.save_model`` writes it (what nnsweep logs)."""
    import keras
    import mlflow.keras

    if model is None:
        model = keras.Sequential(
            [keras.Input((784,)), keras.layers.Dense(10, activation="softmax")]
        )
    mlflow.keras.save_model(model, str(folder), pip_requirements=[])
    return folder


def _edit_mlmodel(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    import yaml

    meta = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    edit(meta["flavors"])
    (folder / "MLmodel").write_text(yaml.safe_dump(meta), encoding="utf-8")


def _lambda_keras(marker: Path) -> Any:
    """A Keras model whose Lambda layer would write ``marker`` when deserialised unsafely."""
    import keras

    path = str(marker)
    code = f"lambda x: (open({path!r}, 'w').write('lambda ran'), x)[1]"  # runs at load time
    inputs = keras.Input((784,))
    hidden = keras.layers.Lambda(eval(code))(inputs)  # noqa: S307 - the hostile payload
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


HOSTILE_MODELS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "only python_function": (lambda f: f.pop("keras"), "not the keras flavour"),
    "keras plus sklearn": (
        lambda f: f.update(sklearn={"pickled_model": "model.pkl"}),
        "sklearn is not the keras flavour",
    ),
    "custom loader_module": (
        lambda f: f["python_function"].update(loader_module="evil_loader", code="code"),
        "carries its own loader or code",
    ),
    "exported SavedModel": (
        lambda f: f["keras"].update(save_exported_model=True),
        "no native .keras file",
    ),
    "no flavours": (lambda f: f.clear(), "not the keras flavour"),
}


@pytest.mark.parametrize("case", list(HOSTILE_MODELS))
def test_only_the_keras_flavour_nnsweep_logs_is_accepted(tmp_path: Path, case: str) -> None:
    from nnsweep.errors import ExportError
    from nnsweep.predict.loader import logged_keras_file

    folder = _save_keras_flavour(tmp_path / "model")
    assert logged_keras_file(folder, "models:/m") == folder / "data" / "model.keras"
    edit, reason = HOSTILE_MODELS[case]
    _edit_mlmodel(folder, edit)
    with pytest.raises(ExportError, match="models:/m: flavour") as err:
        logged_keras_file(folder, "models:/m")
    assert reason in str(err.value)


def test_keras_file_escaping_the_model_folder_is_refused(tmp_path: Path) -> None:
    from nnsweep.errors import ExportError
    from nnsweep.predict.loader import logged_keras_file

    folder = _save_keras_flavour(tmp_path / "model")
    outside = tmp_path / "outside.keras"
    (folder / "data" / "model.keras").replace(outside)
    (folder / "data" / "model.keras").symlink_to(outside)
    with pytest.raises(ExportError, match="no data/model.keras file"):
        logged_keras_file(folder, "models:/m")


def test_keras_lambda_code_does_not_run(tmp_path: Path) -> None:
    """A keras-flavoured model whose .keras file holds a Lambda is refused by safe mode."""
    import keras

    from nnsweep.errors import ExportError
    from nnsweep.predict.loader import _keras_predictor, logged_keras_file

    marker = tmp_path / "lambda.txt"
    folder = _save_keras_flavour(tmp_path / "model", _lambda_keras(marker))
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    path = logged_keras_file(folder, "models:/m")
    with pytest.raises(ExportError, match="Keras cannot load it"):
        _keras_predictor(path, "models:/m")
    assert not marker.exists()
    keras.saving.load_model(path, safe_mode=False)  # hostile indeed: unsafe mode runs it
    assert marker.exists()
