"""Models for ``nnsweep predict``: ``.keras`` files in Keras' safe mode, nothing else.

A model is an ``nnsweep export`` folder (its ``model.keras``), a ``.keras`` file, or an MLflow
model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``models:/m-…``) resolved in the
given tracking store. A registry model must be one nnsweep logged (its own pyfunc,
:mod:`nnsweep.track.pyfunc`, or the older ``keras`` flavour; see :func:`logged_keras_file`):
its ``.keras`` file is read directly and MLflow's generic pyfunc loader is never used, because that
loader imports and runs whatever code a model carries (a custom ``PythonModel``, a
``loader_module``, pickles), so anyone who can register a model could run code on the
predicting machine.

What the model reads and answers (:class:`nnsweep.data.modelio.ModelIO`: task, labels, feature
columns) comes from the export's ``model_card.json`` (its ``io`` section), or from the
``nnsweep_io.json`` nnsweep logs beside a model in MLflow, and is checked against the model's
own inputs and outputs. A digit model (784 pixels → 10 classes) needs neither.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nnsweep.data.modelio import ModelIO
from nnsweep.data.rowmodel import LoadedModel, load_keras
from nnsweep.errors import ExportError, first_line

URI_PREFIXES = ("models:/",)
MAX_MLMODEL_BYTES = 1 << 20
# MLflow's own switch (default on in 3.x): off, pickled models fail instead of running code.
PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"

CARD_FILE = "model_card.json"  # what nnsweep.export writes beside model.keras
MAX_CARD_BYTES = 64 << 20  # a card with 10,000 columns and their vocabularies stays far below

Predictor = Callable[[Any], np.ndarray]


def load_predictor(model: str, tracking_uri: str) -> LoadedModel:
    """The model ``model`` names (see the module docstring), loaded in safe mode with its
    contract: an export folder's card, the io file MLflow holds beside a logged model, or for
    a model with neither, the digits' (784 pixels → 10 probabilities) if it has that shape.

    Raises:
        ExportError: no such model, not a .keras file, a model Keras cannot load safely, or
            one whose shape its card does not describe.
    """
    if model.startswith(URI_PREFIXES):
        return _mlflow_predictor(model, tracking_uri)
    path = Path(model)
    if path.is_dir():
        path = path / "model.keras"
        if not path.is_file():
            raise ExportError(
                f"MODEL {model}: folder has no model.keras; give an `nnsweep export` folder, a "
                ".keras file or models:/NAME@alias"
            )
    elif not path.exists():
        raise ExportError(
            f"MODEL {model}: no such file or folder; give an `nnsweep export` folder, a .keras "
            "file or models:/NAME@alias"
        )
    elif path.suffix != ".keras":
        raise ExportError(
            f"MODEL {model}: not a .keras file; give an `nnsweep export` folder, a .keras file "
            "or models:/NAME@alias"
        )
    return _keras_predictor(path, model, read_io(path.parent / CARD_FILE, card=True))


def peek_io(model: str) -> ModelIO | None:
    """The contract in the card of a local model (an export folder, or a .keras file in one),
    read without loading Keras; None for a model with no card or that is not there.

    Raises:
        ExportError: a card that is there but unreadable or malformed.
    """
    path = Path(model)
    folder = path if path.is_dir() else path.parent if path.suffix == ".keras" else None
    if folder is None or not (folder / CARD_FILE).exists():
        return None
    return read_io(folder / CARD_FILE, card=True)


def read_io(path: Path, *, card: bool) -> ModelIO | None:
    """The model contract in a card (its ``io`` section) or an io file; None if absent.

    Raises:
        ExportError: a file that is there but oversized, not JSON or malformed.
    """
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise ExportError(f"{path}: not a regular file; re-export the model with nnsweep")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise ExportError(f"{path}: over {MAX_CARD_BYTES >> 20} MiB; not an nnsweep model card")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ExportError(f"{path}: not readable JSON ({first_line(exc)[:120]})") from None
    if card:
        if not isinstance(data, dict) or "io" not in data:
            return None  # a card from before the io section: a digit model
        data = data["io"]
    return ModelIO.from_dict(data, str(path))


def _keras_predictor(path: Path, label: str, contract: ModelIO | None = None) -> LoadedModel:
    """Load a ``.keras`` file in Keras' safe mode (no lambda or pickled code runs)."""
    return load_keras(path, label, contract)


def _mlflow_predictor(uri: str, tracking_uri: str) -> LoadedModel:
    """Load a registry model as nnsweep logged it: the Keras file only, never MLflow's loader.

    MLflow's generic ``pyfunc`` loader imports and runs whatever code a model carries (a
    custom ``PythonModel``, a ``loader_module``, pickles), so anyone who can register a model
    could run code on the predicting machine. Only the ``keras`` flavour's ``.keras`` file is
    read, in Keras' safe mode; any other model is refused before anything in it is loaded.
    """
    from nnsweep.track.models import download_model
    from nnsweep.track.pyfunc import IO_FILE
    from nnsweep.track.tracker import open_reader

    open_reader(tracking_uri)  # refuses a missing store before MLflow creates one
    with _no_pickles(), tempfile.TemporaryDirectory(prefix="nnsweep-predict-") as tmp:
        local = download_model(uri, tmp, tracking_uri)
        keras_file = logged_keras_file(local, uri)
        return _keras_predictor(keras_file, uri, read_io(local / IO_FILE, card=False))


@contextlib.contextmanager
def _no_pickles() -> Iterator[None]:
    """MLflow's pickle switch off while a model is fetched: nnsweep never unpickles a model,
    and should anything in MLflow try, it must refuse."""
    previous = os.environ.get(PICKLE_SWITCH)
    os.environ[PICKLE_SWITCH] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PICKLE_SWITCH, None)
        else:
            os.environ[PICKLE_SWITCH] = previous


def logged_keras_file(local: Path, uri: str) -> Path:
    """The ``.keras`` file of a downloaded MLflow model, if it is one that nnsweep logs.

    Accepted: an ``MLmodel`` whose only flavour is ``python_function`` with nnsweep's own
    loader module (:mod:`nnsweep.track.pyfunc`, installed here, not shipped with the model) and
    nothing else (no code, pickle or artifacts), its data the ``.keras`` file at
    ``data/model.keras``; or, as nnsweep logged models before, the ``keras`` flavour (a
    native ``.keras`` file there, not an exported SavedModel) with, optionally,
    ``python_function`` pointing at ``mlflow.keras`` with no code of its own.

    Raises:
        ExportError: any other model, naming the flavours found.
    """
    import yaml

    from nnsweep.track.pyfunc import PYFUNC_KERAS_FILE as MLFLOW_KERAS_FILE

    mlmodel = local / "MLmodel"
    if not mlmodel.is_file() or mlmodel.stat().st_size > MAX_MLMODEL_BYTES:
        raise ExportError(f"MODEL {uri}: no readable MLmodel file; give a model nnsweep logged")
    try:
        meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        meta = None
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    if not isinstance(flavors, dict):
        raise ExportError(
            f"MODEL {uri}: its MLmodel file lists no flavours; not a model nnsweep logged"
        )
    names = ", ".join(sorted(map(str, flavors))) or "none"
    problem = _flavor_problem(flavors)
    if problem:
        raise ExportError(
            f"MODEL {uri}: flavour(s) {names}: {problem}; nnsweep loads only the Keras models "
            "it logs, so no code shipped with a model runs here"
        )
    path = local / MLFLOW_KERAS_FILE
    inside = path.resolve().is_relative_to(local.resolve())
    if not inside or path.is_symlink() or not path.is_file():
        raise ExportError(
            f"MODEL {uri}: flavour(s) {names}: no {MLFLOW_KERAS_FILE} file; give a model nnsweep "
            "logged"
        )
    return path


def _flavor_problem(flavors: dict[Any, Any]) -> str | None:
    """Why an MLmodel's flavours are not what nnsweep logs, or None if they are."""
    from nnsweep.track.pyfunc import LOADER_MODULE, PYFUNC_KERAS_FILE

    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict) and pyfunc.get("loader_module") == LOADER_MODULE:
        # what nnsweep logs now: its own pyfunc, which carries no code, pickle or artifact
        if set(flavors) != {"python_function"}:
            extra = ", ".join(sorted(map(str, set(flavors) - {"python_function"})))
            return f"{extra} is not the keras flavour nor nnsweep's pyfunc"
        carried = {"code", "python_model", "artifacts", "model_code_path", "cloudpickle_version"}
        if any(pyfunc.get(key) for key in carried) or pyfunc.get("data") != PYFUNC_KERAS_FILE:
            return "its python_function entry carries its own loader or code"
        return None
    keras_conf = flavors.get("keras")
    if not isinstance(keras_conf, dict):
        return "not the keras flavour nor nnsweep's pyfunc"
    others = set(flavors) - {"keras", "python_function"}
    if others:
        return f"{', '.join(sorted(map(str, others)))} is not the keras flavour"
    if keras_conf.get("save_exported_model") or keras_conf.get("data", "data") != "data":
        return "the keras flavour holds no native .keras file"
    if pyfunc is not None and (
        not isinstance(pyfunc, dict)
        or pyfunc.get("loader_module") != "mlflow.keras"
        or pyfunc.get("code")
    ):
        return "its python_function entry carries its own loader or code"
    return None
