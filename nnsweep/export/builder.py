"""The model card's schema, built in one place from what an export chose and measured.

:func:`build_card` is the only code that lays the card out; :mod:`nnsweep.export.card`
supplies its computed sections and :mod:`nnsweep.export.card_md` renders it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnsweep.export.card import (
    CARD_FORMAT,
    architecture,
    diagnosis_of,
    trainable_count,
    validation_summary,
    versions,
    weights_summary,
)
from nnsweep.export.crossval import cv_section, cv_weights
from nnsweep.track.models import model_uri_of
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import keras
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from nnsweep.data.load import Dataset
    from nnsweep.data.modelio import ModelIO
    from nnsweep.spec.config import SweepSpec
    from nnsweep.train.model import HyperParams

KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"


@dataclass(frozen=True)
class CardFacts:
    """Everything the card states: the study and its best trial, the data, the model chosen
    (``retrain``: refit, described by ``retrained``; ``epoch``/``score``: the kept weights),
    and the figures of the one test read (``test``, ``boosting``, ``test_reads``)."""

    study: optuna.Study
    best: dict[str, Any]
    run: Run
    client: MlflowClient
    tracking_uri: str
    spec: SweepSpec
    dataset: Dataset
    io: ModelIO
    model: keras.Model
    hp: HyperParams
    history: dict[str, list[float]]
    epoch: int
    score: float | None
    retrain: bool
    retrained: dict[str, Any] | None
    n_complete: int
    test: dict[str, Any]
    boosting: dict[str, Any]
    test_reads: dict[str, Any]
    onnx: dict[str, Any] | None = None  # export --onnx: nnsweep.export.onnx.check
    pick: dict[str, Any] | None = None  # two objectives: nnsweep.export.pick.card_section


def build_card(f: CardFacts) -> dict[str, Any]:
    """The card (``model_card.json``'s content) of one export; ``registry`` and
    ``deployment`` are filled in once the model is saved and registered."""
    data, io, objective = f.dataset, f.io, f.spec.objective
    weights = weights_summary(objective.key, f.epoch, f.score, retrained=f.retrain)
    if data.folds:
        weights |= cv_weights(data.folds, f.epoch)
    return {
        "format": CARD_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "study": f.study.study_name,
        "trial": f.best["number"],
        "mlflow": {
            "tracking_uri": mask_url(f.tracking_uri),
            "experiment_id": f.run.info.experiment_id,
            "run_id": f.run.info.run_id,
            "model_uri": model_uri_of(f.run),
        },
        "objective": {
            "metric": objective.metric,
            "direction": objective.direction,
            "reduce": objective.reduce,
            "value": f.best["value"],
        },
        "pick": f.pick,
        "task": {
            "kind": data.task.kind,
            "n_classes": data.task.n_classes,
            "target": data.target,
            "labels": list(io.class_names) if io.class_names is not None else None,
        },
        "params": f.best["params"],
        "parameter_count": trainable_count(f.model),
        "architecture": architecture(f.hp, io),
        "validation": validation_summary(
            f.history, f.spec, n_val=data.scored_rows, n_trials=f.n_complete, weights_epoch=f.epoch
        ),
        "weights": weights,
        "retrain": f.retrained,
        "cross_validation": cv_section(f.client, f.run, objective.key, data, refit_epochs=f.epoch),
        "test": f.test,
        "gradient_boosting": f.boosting,
        "test_reads": f.test_reads,
        "dataset": {
            "name": data.name,
            "source": data.source,
            "target": data.target,
            "sizes": data.sizes,
            "validation_fraction": None if data.folds else f.spec.dataset.validation,
            "folds": data.folds,
            "fingerprint": data.fingerprint,
            "notes": list(data.notes),
            "input": io.describe_input(),
            "output": io.describe_output(),
        },
        "io": io.as_dict(),
        "diagnosis": diagnosis_of(f.run),
        "versions": versions(),
        "registry": None,
        "files": {
            "keras": KERAS_FILE,
            "saved_model": SAVED_MODEL_DIR + "/",
            **({"onnx": f.onnx["file"]} if f.onnx and f.onnx.get("file") else {}),
        },
        **({"onnx": f.onnx} if f.onnx is not None else {}),
    }
