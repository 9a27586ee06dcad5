"""Trial models in MLflow: the step that keeps the best-so-far model, and the helpers behind it.

Reading models back (``models:/`` URIs, downloads) is :mod:`nnsweep.track.models`.

With ``log_models: best`` (the default) a COMPLETE trial whose objective value ties or beats
the study's best COMPLETE value (multi-objective: that no earlier COMPLETE trial dominates)
logs its fitted Keras model on its own child run, so the best trial (every trial of the
front) of a finished study has its weights in MLflow; ``all`` also logs every other
COMPLETE or PRUNED trial, ``none`` logs nothing (``nnsweep export --retrain`` still works).
A cross-validated trial logs none: its models are its folds', each fitted on part of the
training rows, and export refits on all of them (:mod:`nnsweep.train.cv`).

Each model is an MLflow *LoggedModel* (the run's "Models" tab): a pyfunc that takes raw rows
(:mod:`nnsweep.track.pyfunc`: the table's own columns with their types, or 784 pixel values
per row for digits) and answers original labels and probabilities, so ``mlflow models serve``
serves it as it is. It holds the Keras file at ``data/model.keras``, an input example (the
first training rows, raw), and ``nnsweep_io.json``: the model's task, labels and feature
columns (:class:`nnsweep.data.modelio.ModelIO`), which ``nnsweep predict models:/…`` reads.
The run gets the tag ``nnsweep.model_uri`` (``models:/m-…``), which the exporter reads.

The model is written with ``mlflow.pyfunc.save_model`` into a folder and uploaded with
:class:`mlflow.MlflowClient`, instead of ``mlflow.pyfunc.log_model``: pinned requirements
and no validation round trip keep a log at well under a second.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.data.modelio import ModelIO, digits_io
from nnsweep.errors import first_line
from nnsweep.names import (
    BEST_SO_FAR_TAG,
    MODEL_ERROR_TAG,
    MODEL_URI_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
)
from nnsweep.study.objectives import ALSO_ATTR, is_multi
from nnsweep.track.pyfunc import IO_FILE as PYFUNC_IO_FILE
from nnsweep.track.pyfunc import PYFUNC_KERAS_FILE
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import keras
    import optuna
    from mlflow import MlflowClient

    from nnsweep.spec.config import SweepSpec
    from nnsweep.track.tracker import Tracker
    from nnsweep.train.result import TrialResult

MODEL_NAME = "model"
MLFLOW_KERAS_FILE = PYFUNC_KERAS_FILE  # the .keras file inside a logged model's folder
IO_FILE = PYFUNC_IO_FILE  # beside MLmodel: the model's ModelIO

_log = logging.getLogger(__name__)


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (MLflow adds its own pin); nnsweep itself is one,
    since the model's loader is :mod:`nnsweep.track.pyfunc`."""
    reqs = []
    for dist in ("nnsweep", "keras", "tensorflow-cpu", "tensorflow", "numpy", "pandas"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


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

    ``input_example``: a few rows as the model takes them (an array or an input dict), logged
    as raw rows; ``io``: the model's contract (a digit model's if None), written beside it as
    :data:`IO_FILE`.

    Raises:
        Exception: whatever MLflow or Keras raise; the LoggedModel is then marked FAILED.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from nnsweep.track.pyfunc import KERAS_FILE, raw_example, save

    contract = io if io is not None else digits_io()
    logged = client.create_logged_model(
        experiment_id,
        name=name,
        source_run_id=run_id,
        params={k: str(v) for k, v in (params or {}).items()},
        tags={k: str(v) for k, v in (tags or {}).items()},
    )
    try:
        with tempfile.TemporaryDirectory(prefix="nnsweep-model-") as tmp:
            keras_file = Path(tmp, KERAS_FILE)
            model.save(keras_file)
            folder = Path(tmp, "pyfunc")
            save(
                folder,
                keras_file,
                contract,
                example=raw_example(contract, input_example),
                mlflow_model=Model(
                    artifact_path=logged.artifact_location,
                    run_id=run_id,
                    model_id=logged.model_id,
                    model_uuid=logged.model_id,
                ),
                pip_requirements=pip_requirements(),
            )
            client.log_model_artifacts(logged.model_id, str(folder))
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
        if result.cv is not None:  # a fold's model saw (K-1)/K of the rows: export refits
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

        Ties count, so whichever of two equal trials Optuna calls best has a model. In a
        multi-objective study: no COMPLETE trial before it dominates it (it joins the front
        as it stands), so every trial of the final front has its model.
        """
        value = result.value
        if value is None:
            return False
        if is_multi(trial.study):
            return not _dominated(trial.study, value, trial.user_attrs.get(ALSO_ATTR))
        try:
            best = trial.study.best_value
        except ValueError:  # no COMPLETE trial yet
            return True
        return value >= best if self.spec.objective.direction == "maximize" else value <= best


def _dominated(study: optuna.Study, primary: float, also: float | None) -> bool:
    """Whether a COMPLETE trial the study ran itself dominates (``primary``, ``also``): at
    least as good on both objectives and better on one (the second is minimised)."""
    from nnsweep.study.objectives import primary_direction
    from nnsweep.study.own import own_complete

    if also is None:
        return False
    sign = 1.0 if primary_direction(study) == "maximize" else -1.0
    for t in own_complete(study):
        if not t.values or len(t.values) < 2:
            continue
        p, a = sign * float(t.values[0]), float(t.values[1])
        if p >= sign * primary and a <= also and (p > sign * primary or a < float(also)):
            return True
    return False
