"""Where an exported model and its story come from.

A trial's MLflow run, the Keras model the sweep logged on it, and the epoch (and validation
score) of the weights that model holds.

Used by :func:`nnsweep.export.export.export_best` for the best trial and by
:mod:`nnsweep.export.ensemble` for every member of an ensemble.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from nnsweep.errors import ExportError
from nnsweep.tasks import WEIGHTS_EPOCH_METRIC, weights_metric
from nnsweep.track.models import MODEL_URI_TAG, download_model, model_uri_of
from nnsweep.train.modellog import MLFLOW_KERAS_FILE, MODEL_ERROR_TAG
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import keras
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from nnsweep.spec.config import SweepSpec


def run_of(client: MlflowClient, best: dict[str, Any], tracking_uri: str) -> Run:
    """The MLflow run of trial ``best`` (a dict as :func:`~nnsweep.study.storage.best_trial`
    gives it).

    Raises:
        ExportError: the trial has no run id, or the store holds no such run.
    """
    from mlflow.exceptions import MlflowException

    run_id = best.get("run_id")
    where = f"tracking store {mask_url(tracking_uri)}"
    if not run_id:
        raise ExportError(f"best trial #{best['number']} has no MLflow run id; re-run the sweep")
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ExportError(
            f"best trial #{best['number']}: run {run_id} is not in {where}; pass the "
            "--tracking-uri the sweep logged to"
        ) from None


def logged_model(run: Run, number: int, tracking_uri: str) -> keras.Model:
    """Load the Keras model the sweep logged on trial ``number``'s run."""
    import keras

    uri = model_uri_of(run)
    if uri is None:
        why = run.data.tags.get(MODEL_ERROR_TAG)
        reason = f"logging it failed: {why}" if why else "the sweep ran with log_models: none?"
        raise ExportError(
            f"best trial #{number}: run {run.info.run_id} has no {MODEL_URI_TAG} tag ({reason}); "
            "export with --retrain to refit it from its params"
        )
    with tempfile.TemporaryDirectory(prefix="nnsweep-model-") as tmp:
        local = download_model(uri, tmp, tracking_uri)
        return keras.saving.load_model(local / MLFLOW_KERAS_FILE)


def weights_of(
    run: Run, spec: SweepSpec, history: dict[str, list[float]]
) -> tuple[int, float | None]:
    """The epoch (from 1) whose weights the trial's model holds, and their validation score.

    As the sweep logged them on the run (``weights_epoch``, ``weights_<metric>``). Runs from
    nnsweep versions before those metrics hold the last epoch's weights, or the epoch early
    stopping restored: that is replayed with Keras' rule (a gain of more than ``min_delta``).
    """
    metric = spec.objective.key
    logged = run.data.metrics
    if WEIGHTS_EPOCH_METRIC in logged:
        return int(logged[WEIGHTS_EPOCH_METRIC]), logged.get(weights_metric(metric))
    values = history.get(metric) or history.get("loss") or []
    if not values:
        raise ExportError(f"the best trial's run has no {metric} history; it cannot be exported")
    es = spec.train.early_stopping
    best_epoch = len(values)
    if es is not None and es.restore_best_weights:
        sign = 1.0 if spec.objective.direction == "maximize" else -1.0
        best_epoch, best = 1, sign * values[0]
        for epoch, value in enumerate(values[1:], start=2):
            if sign * value - es.min_delta > best:
                best_epoch, best = epoch, sign * value
    curve = history.get(metric) or []
    return best_epoch, curve[best_epoch - 1] if len(curve) >= best_epoch else None
