"""The MLflow side of an export: the Model Registry version and the test metrics on the run.

:func:`register_model` adds a version of a registered model under the alias ``champion``;
:func:`log_test_metrics` logs the card's test figures on the best trial's run, one set per
export (step = the read's number in the study's test-read ledger). Both are called
by :func:`nnsweep.export.export.export_best` once the card is assembled.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from nnsweep.errors import ExportError, first_line
from nnsweep.export.card import primary_metric, scalar_metrics
from nnsweep.export.ledger import read_number, read_tag
from nnsweep.names import RETRAINED_TAG, STUDY_TAG, TEST_READ_KEY, TRIAL_TAG
from nnsweep.track.models import MODEL_URI_TAG, model_uri_of
from nnsweep.train.modellog import log_keras_model
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import keras
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from nnsweep.data.modelio import ModelIO

CHAMPION = "champion"


def register_model(
    client: MlflowClient,
    name: str,
    run: Run,
    model: keras.Model,
    card: dict[str, Any],
    example: Any,
    io: ModelIO,
) -> dict[str, Any]:
    """A new version of registered model ``name`` with alias ``champion``.

    The version points at the model the sweep logged on the run; a retrained model is first
    logged on the same run (as ``model-retrained``), so the registry never holds weights that
    MLflow cannot trace to a run.
    """
    from mlflow.exceptions import MlflowException

    retrained = card["retrain"] is not None
    ensemble = bool(card.get("ensemble"))  # the mean of several trials' models
    source = model_uri_of(run)
    metric = primary_metric(card["test"])
    try:
        if retrained or ensemble or source is None:
            source = log_keras_model(
                client,
                run.info.experiment_id,
                run.info.run_id,
                model,
                input_example=example,
                io=io,
                name="model-ensemble" if ensemble else "model-retrained" if retrained else "model",
                params=card["params"],
                tags={
                    STUDY_TAG: card["study"],
                    TRIAL_TAG: card["trial"],
                    RETRAINED_TAG: str(retrained).lower(),
                },
            )
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description="nnsweep export")
        model_id = source.removeprefix("models:/")
        # The files' location, not models:/m-…: MLflow's SQL registry resolves a models:/
        # source through the *global* tracking URI, which need not be this store, and does
        # not keep model_id; the tag nnsweep.model_uri keeps the link to the logged model.
        version = client.create_model_version(
            name,
            source=client.get_logged_model(model_id).artifact_location,
            run_id=run.info.run_id,
            model_id=model_id,
            tags={
                STUDY_TAG: card["study"],
                TRIAL_TAG: str(card["trial"]),
                RETRAINED_TAG: str(retrained).lower(),
                MODEL_URI_TAG: source,
                f"test_{metric}": f"{card['test'][metric]:.4f}",
            },
            description=f"{card['study']} trial #{card['trial']}: {card['architecture']}",
        )
        client.set_registered_model_alias(name, CHAMPION, version.version)
    except MlflowException as exc:
        reason = mask_url(first_line(exc))[:200]
        raise ExportError(
            f"--register {name}: the MLflow Model Registry refused ({reason})"
        ) from None
    return {
        "name": name,
        "version": int(version.version),
        "alias": CHAMPION,
        "uri": f"models:/{name}@{CHAMPION}",
        "source": source,
    }


def log_test_metrics(client: MlflowClient, run_id: str, card: dict[str, Any]) -> None:
    """Log the test metrics (``test_accuracy``, ``test_loss``, ``test_mae``, …) on the best
    trial's run, linked to the exported model if MLflow holds it.

    One export logs one set, under the same names whether the model was refit or not: step
    ``n`` holds the study's ``n``-th read of its test split (:mod:`nnsweep.export.ledger`), and
    the tag ``nnsweep.test_read`` says which read the latest values are and what they scored.
    Two sets side by side (``test_*`` and ``retrained_test_*``) invite picking one by its test
    score; that choice belongs on validation scores, before the test split is read."""
    from mlflow.entities import Metric, RunTag

    retrained = card["retrain"] is not None
    uri = (card["registry"] or {}).get("source") or (
        None if retrained else card["mlflow"]["model_uri"]
    )
    model_id = uri.removeprefix("models:/") if uri else None
    step = read_number(card)
    now = int(time.time() * 1000)
    metrics = [
        Metric("test_" + key, value, now, step, model_id=model_id)
        for key, value in scalar_metrics(card["test"]).items()
        if value == value  # NaN (an AUC with one class in the test split) is left out
    ]
    tags = [RunTag(TEST_READ_KEY, read_tag(card))]
    client.log_batch(run_id, metrics=metrics, tags=tags)
