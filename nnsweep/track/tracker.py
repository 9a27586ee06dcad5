"""MLflow tracking: one experiment per sweep, one parent run per invocation, one child per trial.

All calls go through an explicit :class:`mlflow.MlflowClient` with explicit run ids, so no
global "active run" state leaks between trials. Child runs are opened *before* a trial trains
and closed after it, so the UI shows real durations and live curves.

Metric steps are epochs counted from 1, as Keras prints them ("Epoch 1/10"). Per-epoch metrics
are written by a background thread (:class:`_EpochWriter`), in order, so the next epoch starts
while the store commits; closing a trial's run waits for them and raises what failed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from nnsweep.errors import StorageError
from nnsweep.names import (
    BEST_PARAMS_TAG,
    BEST_TRIAL_TAG,
    BEST_VALUE_TAG,
    FAIL_REASON_KEY,
    HOST_KEY,
    PID_KEY,
    ROLE_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
)
from nnsweep.stores import artifact_location, check_tracking_uri, retry_race, sqlite_path
from nnsweep.tasks import ALL_CURVE_KEYS, ALL_TRAIN_EVAL_KEYS
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput

    from nnsweep.data.load import Dataset

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the UI's "Model training" mode
PARENT_TAG = "mlflow.parentRunId"
# a parent run's params that say what the sweep optimises (the UI sorts its runs by them)
OBJECTIVE_METRIC_PARAM = "objective_metric"
OBJECTIVE_REDUCE_PARAM = "objective_reduce"
DIRECTION_PARAM = "direction"
# every per-epoch curve a trial may log, whatever its task (see Task.curve_keys)
EPOCH_METRICS = (*ALL_CURVE_KEYS, *ALL_TRAIN_EVAL_KEYS)  # traineval: the dropout-off curves
DATA_CONTEXT_TAG = "mlflow.data.context"  # MLflow's input tag for what a dataset was used for
DIGEST_CHARS = 32  # of the data's SHA-256 fingerprint; MLflow stores digests of <= 36 chars


def open_reader(tracking_uri: str) -> MlflowClient:
    """A client for reading a sweep's runs back, refusing a store that is not there.

    MLflow would silently create a missing SQLite file; for a reader that is a wrong URI.

    Raises:
        StorageError: the SQLite file does not exist, its folder is missing, or the server
            does not answer.
    """
    from mlflow import MlflowClient

    path = sqlite_path(tracking_uri)
    if path is not None and not path.is_file():
        raise StorageError(
            f"tracking URI {mask_url(tracking_uri)}: {path} does not exist; pass the "
            "--tracking-uri (or MLFLOW_TRACKING_URI) the sweep logged to"
        )
    check_tracking_uri(tracking_uri)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=tracking_uri)


def fetch_history(client: MlflowClient, run_id: str) -> dict[str, list[float]]:
    """A run's per-epoch curves (MLflow steps are epochs from 1), epoch 1 first."""
    history: dict[str, list[float]] = {}
    for key in EPOCH_METRICS:
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        if points:
            history[key] = [float(m.value) for m in points]
    return history


def dataset_input(dataset: Dataset) -> DatasetInput:
    """The MLflow dataset input a trial logs, so the runs table's Dataset column names its data.

    Name: the dataset's name (a table's file name); digest: the first 32 hex digits of its
    content fingerprint (SHA-256 of the file or arrays); source: the file, or where the
    arrays came from; schema: the model's inputs and target (MLflow's tensor spec, inferred
    from two rows); profile: task, target, classes, the train/val/test sizes and what loading
    decided (imputed or dropped columns, dropped rows).
    """
    from pathlib import Path

    import numpy as np
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag

    from nnsweep.data.features import take_rows

    sample = take_rows(dataset.x_train, np.arange(min(2, len(dataset.y_train))))
    if isinstance(sample, dict):  # text categories arrive as string tensors
        sample = {k: np.asarray(v).astype(str) if not isinstance(v, np.ndarray) else v
                  for k, v in sample.items()}  # fmt: skip
    described = from_numpy(
        sample, targets=np.asarray(dataset.y_train[:2]), name=dataset.name, digest="-"
    ).to_dict()
    path = Path(dataset.source).expanduser()
    if path.is_file():
        source_type, source = "local", json.dumps({"uri": str(path.resolve())})
    else:
        source_type, source = "code", json.dumps({"tags": {"mlflow.source.name": dataset.source}})
    profile = {
        "task": dataset.task.kind,
        "target": dataset.target,
        "classes": dataset.n_classes,
        "input_width": dataset.input_width,
        **{f"{split}_rows": n for split, n in dataset.sizes.items()},
        "notes": [note[:500] for note in dataset.notes[:20]],
    }
    entity = DatasetEntity(
        name=dataset.name[:500],
        digest=(dataset.fingerprint or "unknown")[:DIGEST_CHARS],
        source_type=source_type,
        source=source,
        schema=described["schema"],
        profile=json.dumps(profile),
    )
    return DatasetInput(entity, tags=[InputTag(DATA_CONTEXT_TAG, "training")])


def open_store(tracking_uri: str) -> MlflowClient:
    """A client on ``tracking_uri``, MLflow's tables created first when the store is new.

    Safe when other processes do the same at the same moment: a creation that loses the race
    is repeated and finds the tables the other one made.

    Raises:
        StoreBusyError: still losing races after a few tries.
    """
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return retry_race(
        lambda: MlflowClient(tracking_uri=tracking_uri),
        f"tracking URI {mask_url(tracking_uri)}: creating MLflow's tables",
    )


def ensure_experiment(tracking_uri: str, name: str, *, client: MlflowClient | None = None) -> str:
    """The id of experiment ``name``, created (or restored from the bin) if needed.

    A new experiment of a SQLite store keeps its artifacts under ``mlruns/NAME`` beside the
    file, wherever the command runs; every experiment is tagged as a model-training one, so
    the MLflow UI opens it on its runs table. Safe when other processes do the same at the
    same moment: a step that loses the race is repeated and finds what the other one made.

    Raises:
        StoreBusyError: still losing races after a few tries.
    """
    store = client if client is not None else open_store(tracking_uri)

    def ensure() -> str:
        exp = store.get_experiment_by_name(name)
        if exp is None:
            exp_id = store.create_experiment(
                name, artifact_location=artifact_location(tracking_uri, name)
            )
        else:
            if exp.lifecycle_stage == "deleted":
                store.restore_experiment(exp.experiment_id)
            exp_id = exp.experiment_id
        store.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return str(exp_id)

    return retry_race(ensure, f"tracking URI {mask_url(tracking_uri)}: experiment {name!r}")


class _EpochWriter:
    """Applies queued ``log_metrics`` calls on one daemon thread, in the order they came.

    A store write that fails is kept and raised by the next :meth:`flush`; later queued writes
    are dropped, so the run is closed with what was stored before the failure.
    """

    def __init__(self, write: Any) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def put(self, *args: Any) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="nnsweep-metrics", daemon=True)
            self._thread.start()
        self._queue.put(args)

    def _work(self) -> None:
        while True:
            args = self._queue.get()
            try:
                if self._error is None:
                    self._write(*args)
            except BaseException as exc:  # handed to the trainer's thread by flush()
                self._error = exc
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued write is stored; raise the first one that failed."""
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class Tracker:
    """Writes one sweep's runs to an MLflow tracking store.

    Args:
        tracking_uri: any MLflow tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``…).
        experiment: experiment name (the sweep name).
    """

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        from mlflow import MlflowClient

        # mlflow configures its loggers on first import; its INFO lines are noise here
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.tracking_uri = tracking_uri
        # a new database store creates its tables here, which races with other processes
        self.client: MlflowClient = retry_race(
            lambda: MlflowClient(tracking_uri=tracking_uri),
            f"tracking URI {mask_url(tracking_uri)}: creating MLflow's tables",
        )
        self._epochs = _EpochWriter(self.log_metrics)
        self.experiment_id = ensure_experiment(tracking_uri, experiment, client=self.client)

    # -- runs ---------------------------------------------------------------------------------
    def start_parent(self, study: str, *, tags: dict[str, str], params: dict[str, Any]) -> str:
        """Open this invocation's parent run; returns its run id."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{study} @ {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={ROLE_TAG: "study", STUDY_TAG: study, **tags},
        )
        self.log_params(run.info.run_id, params)
        return str(run.info.run_id)

    def start_trial(
        self,
        parent_id: str,
        study: str,
        number: int,
        params: dict[str, Any],
    ) -> str:
        """Open a trial's child run (nested under ``parent_id``); returns its run id."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number:03d}",
            tags={
                PARENT_TAG: parent_id,
                ROLE_TAG: "trial",
                STUDY_TAG: study,
                TRIAL_TAG: str(number),
                STATE_TAG: "RUNNING",
            },
        )
        self.log_params(run.info.run_id, params)
        return str(run.info.run_id)

    def log_dataset(self, run_id: str, data: DatasetInput) -> None:
        """Record ``data`` (see :func:`dataset_input`) as the run's input."""
        self.client.log_inputs(run_id, datasets=[data])

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        if params:
            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(
        self, run_id: str, metrics: dict[str, float], step: int = 0, timestamp: int | None = None
    ) -> None:
        from mlflow.entities import Metric

        now = timestamp or int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def log_epoch(self, run_id: str, metrics: dict[str, float], epoch: int) -> None:
        """Queue one epoch's metrics (step = ``epoch``, time = now) for the background writer."""
        self._epochs.put(run_id, dict(metrics), epoch, int(time.time() * 1000))

    def flush(self) -> None:
        """Wait for queued epoch metrics; raises the store error that stopped them, if any."""
        self._epochs.flush()

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        # every tag value masked: failure reasons quote driver errors that may hold a secret
        if tags:
            batch = [RunTag(k, mask_url(str(v))) for k, v in tags.items()]
            self.client.log_batch(run_id, tags=batch)

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        self.client.log_text(run_id, json.dumps(data, indent=2, default=str), name)

    def end_trial(self, run_id: str, state: str, reason: str | None = None) -> None:
        """Close a child run: ``state`` is COMPLETE, PRUNED or FAIL (Optuna's words).

        Waits for the run's queued epoch metrics first; if the store refused them, the run is
        closed as FAILED with the reason and the store's error is raised.
        """
        error: BaseException | None = None
        try:
            self.flush()
        except Exception as exc:
            error = exc
            state, reason = "FAIL", f"epoch metrics not stored: {type(exc).__name__}: {exc}"
        tags: dict[str, Any] = {STATE_TAG: state}
        if reason:
            tags[FAIL_REASON_KEY] = mask_url(reason)[:4000]
        self.set_tags(run_id, tags)
        status = "FAILED" if state == "FAIL" else "FINISHED"
        self.client.set_terminated(run_id, status=status)
        if error is not None:
            raise error

    def end_parent(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def update_best(
        self, parent_id: str, number: int, value: float, params: dict[str, Any], n_finished: int
    ) -> None:
        """Record the best trial so far on the parent run (tags, and metric ``best_value``)."""
        self.set_tags(
            parent_id,
            {
                BEST_TRIAL_TAG: number,
                BEST_VALUE_TAG: f"{value:.6g}",
                BEST_PARAMS_TAG: json.dumps(params, sort_keys=True),
            },
        )
        self.log_metrics(parent_id, {"best_value": value}, step=n_finished)

    def close_orphans(self, study: str, run_ids: set[str]) -> list[str]:
        """Close runs of ``study`` left RUNNING by a killed process (status KILLED).

        ``run_ids`` are the runs of trials that Optuna holds as finished or failed: such a
        child run still RUNNING lost its process. A parent run is closed when it was started
        on this host by a process that no longer exists.
        """
        from nnsweep._proc import local_and_dead

        closed: list[str] = []
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{STUDY_TAG}` = '{study}' and attributes.status = 'RUNNING'",
            max_results=5000,
        )
        for run in runs:
            tags = run.data.tags
            if run.info.run_id in run_ids:
                self.set_tags(
                    run.info.run_id,
                    {STATE_TAG: "FAIL", FAIL_REASON_KEY: "process died mid-trial"},
                )
            elif not (
                tags.get(ROLE_TAG) == "study"
                and local_and_dead(tags.get(HOST_KEY), tags.get(PID_KEY))
            ):
                continue
            self.client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
        return closed
