"""Trial models in MLflow: the step that keeps the best-so-far model, and the helpers behind it.

Reading models back (``models:/`` URIs, downloads) is :mod:`nnsweep.track.models`.

With ``log_models: best`` (the default) a COMPLETE trial whose objective value ties or beats
the study's best COMPLETE value logs its fitted Keras model on its own child run, so the best
trial of a finished study always has its weights in MLflow; ``all`` also logs every other
COMPLETE or PRUNED trial, ``none`` logs nothing (``nnsweep export --retrain`` still works).

Each model is an MLflow *LoggedModel* (the run's "Models" tab) in the Keras 3 flavour with a
pyfunc entry point, a tensor signature (digits: float32 ``(-1, 784)`` in, ``(-1, 10)`` out; a
table's model: its named inputs, a float32 ``numeric`` matrix and one string column per
categorical feature) and an input example, plus ``nnsweep_io.json``: the model's task, labels
and feature columns (:class:`nnsweep.data.modelio.ModelIO`), which ``nnsweep predict models:/…``
reads. The run gets the tag ``nnsweep.model_uri`` (``models:/m-…``), which the exporter reads.

The model is written with ``mlflow.keras.save_model`` into a folder and uploaded with
:class:`mlflow.MlflowClient`, instead of ``mlflow.keras.log_model``: in MLflow 3.17 the latter
fails when given an input example (mlflow/mlflow#16183) and, with no explicit requirements,
spends ~15 s per call inferring them in a subprocess. Pinned requirements keep a log at
well under a second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.data.modelio import ModelIO
from nnsweep.errors import first_line
from nnsweep.names import (
    BEST_SO_FAR_TAG,
    MODEL_ERROR_TAG,
    MODEL_URI_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
)
from nnsweep.train.model import INPUT_DIM, N_CLASSES
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import keras
    import numpy as np
    import optuna
    from mlflow import MlflowClient

    from nnsweep.spec.config import SweepSpec
    from nnsweep.track.tracker import Tracker
    from nnsweep.train.result import TrialResult

MODEL_NAME = "model"
MLFLOW_KERAS_FILE = "data/model.keras"  # where mlflow.keras.save_model puts the .keras file
IO_FILE = "nnsweep_io.json"  # beside MLmodel: the model's ModelIO

_log = logging.getLogger(__name__)


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (MLflow adds its own pin)."""
    reqs = []
    for dist in ("keras", "tensorflow-cpu", "tensorflow", "numpy"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def signature(model: keras.Model | None = None, example: Any = None) -> Any:
    """The tensor signature. Digits (no ``model``, or a 784 → 10 one): float32 pixel rows in
    [0, 1] → 10 class probabilities, input unnamed so pyfunc hands Keras a plain array. Any
    other model: inferred from ``example`` (numpy, see :func:`numpy_example`) and its output.
    """
    import numpy as np
    from mlflow.models.signature import ModelSignature, infer_signature
    from mlflow.types import Schema, TensorSpec

    digits = ((INPUT_DIM,), (N_CLASSES,))
    if model is None or (
        not isinstance(example, dict)
        and (tuple(model.input_shape)[1:], tuple(model.output_shape)[1:]) == digits
    ):
        return ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, INPUT_DIM))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, N_CLASSES), "probabilities")]),
        )
    output = np.asarray(model.predict(_tensors(example), verbose=0), dtype=np.float32)
    return infer_signature(example, output)


def _tensors(example: Any) -> Any:
    """A numpy example as Keras takes it: text arrays as string tensors (Keras refuses numpy
    strings)."""
    if not isinstance(example, dict):
        return example
    import tensorflow as tf

    return {
        k: tf.constant(v.astype(str)) if v.dtype.kind in "OSU" else v for k, v in example.items()
    }


def numpy_example(example: Any) -> Any:
    """An input example as numpy: arrays as they are, a dict's tensors as arrays (string
    tensors as ``str`` objects), so MLflow can store it as JSON."""
    import numpy as np

    if not isinstance(example, dict):
        return np.asarray(example)
    out: dict[str, np.ndarray] = {}
    for key, value in example.items():
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array.dtype.kind in "OS":
            array = np.vectorize(
                lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v),
                otypes=[object],
            )(array)
        out[key] = array
    return out


def log_keras_model(
    client: MlflowClient,
    experiment_id: str,
    run_id: str,
    model: keras.Model,
    *,
    input_example: Any,
    io: ModelIO | None = None,
    name: str = MODEL_NAME,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
) -> str:
    """Log ``model`` as an MLflow LoggedModel produced by ``run_id``; returns ``models:/m-…``.

    ``input_example``: a few rows as the model takes them (an array or an input dict);
    ``io``: the model's contract, written beside it as :data:`IO_FILE`.

    Raises:
        Exception: whatever MLflow or Keras raise; the LoggedModel is then marked FAILED.
    """
    import mlflow.keras
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    logged = client.create_logged_model(
        experiment_id,
        name=name,
        source_run_id=run_id,
        params={k: str(v) for k, v in (params or {}).items()},
        tags={k: str(v) for k, v in (tags or {}).items()},
    )
    try:
        example = numpy_example(input_example)
        with tempfile.TemporaryDirectory(prefix="nnsweep-model-") as tmp:
            mlflow.keras.save_model(
                model,
                tmp,
                mlflow_model=Model(
                    artifact_path=logged.artifact_location,
                    run_id=run_id,
                    model_id=logged.model_id,
                    model_uuid=logged.model_id,
                ),
                signature=signature(model, example),
                input_example=example,
                pip_requirements=pip_requirements(),
            )
            if io is not None:
                Path(tmp, IO_FILE).write_text(json.dumps(io.as_dict()), encoding="utf-8")
            client.log_model_artifacts(logged.model_id, tmp)
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    except BaseException:
        with contextlib.suppress(Exception):
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    return f"models:/{logged.model_id}"


class ModelLogger:
    """Per-trial step (see :mod:`nnsweep.train.steps`) that logs the fitted model when it should.

    Args:
        spec: the sweep; ``spec.log_models`` says which trials keep their model.
        tracker: the sweep's MLflow writer.
        io: the models' contract (task, labels, columns) of the sweep's dataset, which the
            sweep already holds.
    """

    def __init__(self, spec: SweepSpec, tracker: Tracker, io: ModelIO) -> None:
        self.spec = spec
        self.tracker = tracker
        self.io = io

    def __call__(self, trial: optuna.Trial, result: TrialResult) -> None:
        mode, state, run_id = self.spec.log_models, result.state, result.run_id
        if mode == "none" or result.model is None or state not in ("COMPLETE", "PRUNED"):
            return
        best = state == "COMPLETE" and self._beats_study(trial, result)
        if not best and mode != "all":
            return
        # A model that cannot be stored must not fail a trial whose metrics are good; the tag
        # says why, and `nnsweep export --retrain` can rebuild it from the params.
        try:
            uri = log_keras_model(
                self.tracker.client,
                self.tracker.experiment_id,
                run_id,
                result.model,
                input_example=result.input_example,
                io=self.io,
                params=result.params.as_params(),
                tags={
                    STUDY_TAG: trial.study.study_name,
                    TRIAL_TAG: trial.number,
                    STATE_TAG: state,
                    BEST_SO_FAR_TAG: str(best).lower(),
                },
            )
        except Exception as exc:
            reason = mask_url(f"{type(exc).__name__}: {first_line(exc)}")[:500]
            _log.warning("trial %d: model not logged (%s)", trial.number, reason)
            self.tracker.set_tags(run_id, {MODEL_ERROR_TAG: reason})
            return
        self.tracker.set_tags(run_id, {MODEL_URI_TAG: uri, BEST_SO_FAR_TAG: str(best).lower()})
        trial.set_user_attr(MODEL_URI_TAG, uri)

    def _beats_study(self, trial: optuna.Trial, result: TrialResult) -> bool:
        """True if this trial's value ties or beats the best COMPLETE trial before it.

        Ties count, so whichever of two equal trials Optuna calls best has a model.
        """
        value = result.value
        if value is None:
            return False
        try:
            best = trial.study.best_value
        except ValueError:  # no COMPLETE trial yet
            return True
        return value >= best if self.spec.objective.direction == "maximize" else value <= best
