"""Export a study's best model: a portable, evaluated and optionally registered artifact.

``export_best`` writes to one folder:

* ``model.keras``: Keras 3 native file; plain ``keras.saving.load_model`` (safe mode on)
  loads it in any process, without nnsweep.
* ``saved_model/``: TensorFlow SavedModel from ``model.export()``, for TF Serving.
* ``model_card.json`` and ``MODEL_CARD.md``: where the model comes from, what it reads and
  answers (task, target, feature columns, label mapping: the ``io`` section that
  ``nnsweep predict`` reads), and how good it is.

The model is the one the sweep logged on the best trial's MLflow run (see
:mod:`nnsweep.train.modellog`), or, with ``retrain``, the best params refit on train+validation for
as many epochs as the trial's model saw (:mod:`nnsweep.train.retrain`). The held-out test split is
read here and nowhere else in nnsweep, once, after the model is chosen: the task's test metrics
with 95 % intervals and the trivial baseline's (:func:`nnsweep.export.card.evaluate`) go into the
card
and onto the best trial's run. With ``register``, the model becomes a new version of a registered
model in the MLflow Model Registry, under the alias ``champion``.

Files are written to a staging folder beside ``out`` and moved in at the end, so a failed
export leaves ``out`` as it was.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.data.features import take_rows
from nnsweep.data.load import sweep_dataset
from nnsweep.data.modelio import ModelIO
from nnsweep.errors import ExportError
from nnsweep.export.card import (
    CARD_FORMAT,
    architecture,
    diagnosis_of,
    evaluate,
    trainable_count,
    validation_summary,
    versions,
    weights_summary,
)
from nnsweep.export.card_md import render_markdown
from nnsweep.export.registry import log_test_metrics, register_model
from nnsweep.names import COMPARABLE_ATTR, SPEC_ATTR
from nnsweep.tasks import WEIGHTS_EPOCH_METRIC, weights_metric
from nnsweep.track.models import MODEL_URI_TAG, download_model, model_uri_of
from nnsweep.track.tracker import fetch_history, open_reader
from nnsweep.train.model import HyperParams
from nnsweep.train.modellog import MLFLOW_KERAS_FILE, MODEL_ERROR_TAG
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import keras
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec

KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
OUTPUTS = (KERAS_FILE, SAVED_MODEL_DIR, CARD_JSON, CARD_MD)


@dataclass
class ExportResult:
    """What :func:`export_best` did."""

    out: Path
    card: dict[str, Any]
    seconds: float


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder without ``force``; with
    ``force``, a non-empty folder that holds no earlier nnsweep export (its model card):
    ``--force`` replaces an export, never whatever else a folder was for.

    Raises:
        ExportError: with the path and the fix.
    """
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: is a file, not a folder; give a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(
                f"--out {out}: folder is not empty; pass --force to overwrite it or pick another"
            )
        if not _holds_export(out):
            raise ExportError(
                f"--out {out}: --force replaces an earlier nnsweep export only, and this "
                f"non-empty folder has no {CARD_JSON} from one; pick an empty or new folder"
            )
    for parent in out.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise ExportError(f"--out {out}: {parent} is a file, not a folder; fix the path")


def _holds_export(folder: Path) -> bool:
    """Whether ``folder`` holds an nnsweep export: a model card in nnsweep's format."""
    card = folder / CARD_JSON
    if card.is_symlink() or not card.is_file() or card.stat().st_size > 1 << 20:
        return False
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    family = CARD_FORMAT.rsplit("/", 1)[0] + "/"  # any version of the card
    return isinstance(data, dict) and str(data.get("format", "")).startswith(family)


def check_registry_name(name: str) -> None:
    """MLflow's rule for registered model names, checked before any work is done."""
    if not name.strip() or any(c in name for c in "/:@"):
        raise ExportError(
            f"--register {name!r}: a registered model name must be non-empty and contain no "
            "'/', ':' or '@'; e.g. --register mnist-mlp"
        )


def export_best(
    study_name: str,
    *,
    out: str | Path,
    storage_url: str,
    tracking_uri: str,
    register: str | None = None,
    retrain: bool = False,
    force: bool = False,
    data_path: str | Path | None = None,
) -> ExportResult:
    """Export the best COMPLETE trial of ``study_name`` to ``out`` (see the module docstring).

    ``data_path`` replaces the sweep's ``dataset.path`` (the file elsewhere, or a relative
    path seen from another folder); the data must be the one the study was swept on.

    Raises:
        ExportError: bad ``out`` or ``register``, the run or its model is missing, or MLflow
            refuses the registration.
        StudyNotFoundError, NoCompleteTrialError, StorageError, DataError: as they say.
    """
    from mlflow import MlflowClient

    from nnsweep.study.storage import best_trial, load_study

    start = time.perf_counter()
    out = Path(out)
    check_out_dir(out, force)
    if register is not None:
        check_registry_name(register)
    open_reader(tracking_uri)  # refuses a missing store before MLflow creates one
    study = load_study(study_name, storage_url)
    best = best_trial(study)
    spec = _spec_of(study)
    if data_path is not None:
        spec = spec.with_overrides(data_path=str(data_path))
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run = _run_of(client, best, tracking_uri)
    dataset = sweep_dataset(spec)
    _check_same_data(study, dataset)
    hp = HyperParams.from_params(best["params"])
    history = fetch_history(client, run.info.run_id)
    epoch, score = _weights_of(run, spec, history)

    io = ModelIO.of(dataset)

    retrained: dict[str, Any] | None = None
    if retrain:
        from nnsweep.train.retrain import retrain as refit

        model, retrained = refit(hp, dataset, seed=spec.seed + best["number"], epochs=epoch)
    else:
        model = _logged_model(run, best["number"], tracking_uri)
        io.check_model(model, f"best trial #{best['number']}'s logged model")
    # Every choice (trial, weights, refit) is made: the test split is read now, once.
    test = evaluate(model, dataset)

    card = {
        "format": CARD_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "study": study.study_name,
        "trial": best["number"],
        "mlflow": {
            "tracking_uri": mask_url(tracking_uri),
            "experiment_id": run.info.experiment_id,
            "run_id": run.info.run_id,
            "model_uri": model_uri_of(run),
        },
        "objective": {
            "metric": spec.objective.metric,
            "direction": spec.objective.direction,
            "reduce": spec.objective.reduce,
            "value": best["value"],
        },
        "task": {
            "kind": dataset.task.kind,
            "n_classes": dataset.task.n_classes,
            "target": dataset.target,
            "labels": list(io.class_names) if io.class_names is not None else None,
        },
        "params": best["params"],
        "parameter_count": trainable_count(model),
        "architecture": architecture(hp, io),
        "validation": validation_summary(
            history, spec, n_val=dataset.sizes["val"], n_trials=_n_complete(study)
        ),
        "weights": weights_summary(spec.objective.metric, epoch, score, retrained=retrain),
        "retrain": retrained,
        "test": test,
        "dataset": {
            "name": dataset.name,
            "source": dataset.source,
            "target": dataset.target,
            "sizes": dataset.sizes,
            "validation_fraction": spec.dataset.validation,
            "fingerprint": dataset.fingerprint,
            "notes": list(dataset.notes),
            "input": io.describe_input(),
            "output": io.describe_output(),
        },
        "io": io.as_dict(),
        "diagnosis": diagnosis_of(run),
        "versions": versions(),
        "registry": None,
        "files": {"keras": KERAS_FILE, "saved_model": SAVED_MODEL_DIR + "/"},
    }

    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name or 'export'}-", dir=out.absolute().parent))
    try:
        model.save(stage / KERAS_FILE)
        model.export(str(stage / SAVED_MODEL_DIR), verbose=False)
        if register is not None:
            example = take_rows(dataset.x_train, [0, 1] if dataset.sizes["train"] > 1 else [0])
            card["registry"] = register_model(client, register, run, model, card, example, io)
        log_test_metrics(client, run.info.run_id, card)
        (stage / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (stage / CARD_MD).write_text(render_markdown(card), encoding="utf-8")
        _move_into(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult(out=out, card=card, seconds=time.perf_counter() - start)


# -- where the model and its story come from ------------------------------------------------
def _spec_of(study: optuna.Study) -> SweepSpec:
    from nnsweep.spec.config import SweepSpec

    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise ExportError(
            f"study {study.study_name!r} has no nnsweep.spec attribute (not made by `nnsweep "
            "run`); export needs the sweep's dataset and seed"
        )
    return SweepSpec.model_validate(raw)


def _run_of(client: MlflowClient, best: dict[str, Any], tracking_uri: str) -> Run:
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


def _logged_model(run: Run, number: int, tracking_uri: str) -> keras.Model:
    """Load the Keras model the sweep logged on the best trial's run."""
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


def _check_same_data(study: optuna.Study, dataset: Dataset) -> None:
    """Refuse data whose content is not what the study was swept on: its splits would differ,
    so the "test" rows could be rows the model trained on.

    Raises:
        ExportError: both fingerprints (shortened) and the fix.
    """
    from nnsweep.study.comparable import FINGERPRINT

    stored = (study.user_attrs.get(COMPARABLE_ATTR) or {}).get(FINGERPRINT)
    if stored and dataset.fingerprint and stored != dataset.fingerprint:
        raise ExportError(
            f"dataset {dataset.name}: its content (SHA-256 {dataset.fingerprint[:12]}…) is not "
            f"what study {study.study_name!r} was swept on ({str(stored)[:12]}…), so its test "
            "split could hold training rows; pass --data-path to the file the sweep read"
        )


def _n_complete(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _weights_of(
    run: Run, spec: SweepSpec, history: dict[str, list[float]]
) -> tuple[int, float | None]:
    """The epoch (from 1) whose weights the trial's model holds, and their validation score.

    As the sweep logged them on the run (``weights_epoch``, ``weights_<metric>``). Runs from
    nnsweep versions before those metrics hold the last epoch's weights, or the epoch early
    stopping restored: that is replayed with Keras' rule (a gain of more than ``min_delta``).
    """
    metric = spec.objective.metric
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


# -- the folder --------------------------------------------------------------------------------
def _move_into(stage: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        (stage / name).replace(target)
