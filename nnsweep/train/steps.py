"""What happens to a trial after its fit: the steps that write its results to MLflow.

Each step is called as ``step(trial, result)`` for every trial, pruned and failed ones
included, before the trial's run is closed. ``result`` (:class:`nnsweep.train.result.TrialResult`)
holds everything the objective computed: the run id, state, value, diagnosis, model and input
example; a step reads it and recomputes nothing. A step must not raise for a trial with a short
or empty history.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nnsweep.errors import first_line
from nnsweep.names import ARTIFACT_ERROR_TAG, FIT_REASON_TAG, FIT_RULE_TAG, FIT_TAG
from nnsweep.tasks import WEIGHTS_EPOCH_METRIC, objective_key, weights_metric
from nnsweep.train.diagnosis import PRUNED
from nnsweep.train.modellog import ModelLogger
from nnsweep.train.result import Step, TrialResult
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from nnsweep.data.modelio import ModelIO
    from nnsweep.spec.config import SweepSpec
    from nnsweep.track.tracker import Tracker


def default_steps(spec: SweepSpec, tracker: Tracker, io: ModelIO) -> list[Step]:
    """The steps every sweep runs, in order; ``io`` is the contract of the sweep's dataset
    (task, labels, columns), logged with each kept model.

    ``log_timing``: ``epochs_run`` and ``train_seconds``. ``log_objective``: a COMPLETE trial's
    objective value, the score Optuna ranks it by, as ``objective_<metric>`` (e.g.
    ``objective_val_mae``; the MLflow UI link sorts the runs by it). ``log_weights``: which epoch's
    weights the trial's model holds (``weights_epoch``) and their validation score under the
    objective's metric (e.g. ``weights_val_accuracy``), which export puts on the model card.
    """

    def log_timing(trial: optuna.Trial, result: TrialResult) -> None:
        metrics: dict[str, Any] = {"epochs_run": result.epochs_run, "train_seconds": result.seconds}
        tracker.log_metrics(result.run_id, metrics)

    def log_objective(trial: optuna.Trial, result: TrialResult) -> None:
        if result.state == "COMPLETE" and result.value is not None:
            key = objective_key(spec.objective.key)
            tracker.log_metrics(result.run_id, {key: float(result.value)})

    def log_weights(trial: optuna.Trial, result: TrialResult) -> None:
        if result.weights_epoch is None or result.weights_score is None:
            return
        metrics = {
            WEIGHTS_EPOCH_METRIC: float(result.weights_epoch),
            weights_metric(spec.objective.key): result.weights_score,
        }
        tracker.log_metrics(result.run_id, metrics)

    return [
        log_timing,
        log_objective,
        log_weights,
        *fit_steps(tracker),
        ModelLogger(spec, tracker, io),  # keeps the best-so-far model (spec.log_models)
    ]


CURVES_ARTIFACT = "learning_curves.png"
SUMMARY_ARTIFACT = "model_summary.txt"
CONFIG_ARTIFACT = "model_config.json"

_log = logging.getLogger(__name__)


def fit_steps(tracker: Tracker) -> list[Step]:
    """Make over- and underfitting visible on each trial's run.

    ``log_diagnosis``: the metrics of the trial's :class:`~nnsweep.train.diagnosis.Diagnosis` and
    the
    tags ``nnsweep.fit`` / ``nnsweep.fit_reason``; a PRUNED trial's history ends where the pruner
    cut it, so its tag is ``pruned`` (reason: the epoch and the pruner), not a fit verdict.
    ``log_curves``: ``learning_curves.png`` (what a pruned or failed trial reached, too).
    ``log_model_text``: ``model_summary.txt`` (Keras' layer table and parameter counts) and
    ``model_config.json`` (``model.to_json()``).
    A trial that finished no usable epoch gets the reason tag and the model text only; an
    artifact the store refuses becomes the tag ``nnsweep.artifact_error``, not a failed trial.
    """

    def log_diagnosis(trial: optuna.Trial, result: TrialResult) -> None:
        diag, run_id = result.diagnosis, result.run_id
        if diag is not None:
            tracker.log_metrics(run_id, diag.metrics())
        fit, reason = verdict(result)
        if fit is None:
            tracker.set_tags(run_id, {FIT_REASON_TAG: reason})
        else:
            tags = {FIT_TAG: fit, FIT_REASON_TAG: reason}
            if diag is not None and fit != PRUNED:  # the figure that decided, beside it
                tags[FIT_RULE_TAG] = diag.rule
            tracker.set_tags(run_id, tags)

    def log_curves(trial: optuna.Trial, result: TrialResult) -> None:
        from nnsweep.train.plots import PNG_SAVE, learning_curves

        diag, run_id = result.diagnosis, result.run_id
        if diag is None and not any(math.isfinite(v) for v in result.history.get("loss", ())):
            return
        fit, reason = verdict(result)
        title = curve_title(trial, result.state, result.epochs_run)
        if fit not in (PRUNED, None):  # a pruned trial's state already says it
            title += f" · {fit}"
        best = diag.best_epoch if diag is not None else result.weights_epoch
        fig = learning_curves(result.history, title=title, best_epoch=best, note=reason)
        _upload(
            tracker,
            run_id,
            CURVES_ARTIFACT,
            lambda: tracker.client.log_figure(run_id, fig, CURVES_ARTIFACT, save_kwargs=PNG_SAVE),
        )

    def log_model_text(trial: optuna.Trial, result: TrialResult) -> None:
        if result.model is None:
            return
        run_id = result.run_id
        lines: list[str] = []
        result.model.summary(print_fn=lambda line, *_, **__: lines.append(line))
        summary = "\n".join(lines).rstrip() + "\n"
        config = json.loads(result.model.to_json())
        _upload(
            tracker,
            run_id,
            SUMMARY_ARTIFACT,
            lambda: tracker.client.log_text(run_id, summary, SUMMARY_ARTIFACT),
        )
        _upload(
            tracker,
            run_id,
            CONFIG_ARTIFACT,
            lambda: tracker.log_dict(run_id, config, CONFIG_ARTIFACT),
        )

    return [log_diagnosis, log_curves, log_model_text]


def verdict(result: TrialResult) -> tuple[str | None, str]:
    """The trial's ``nnsweep.fit`` tag and ``nnsweep.fit_reason``; no tag without a usable epoch.

    A PRUNED trial gets ``pruned``, with the objective's reason (epoch and pruner), even when
    its epochs are usable: a history cut short on purpose says nothing about the fit.
    """
    if result.state == "PRUNED":
        return PRUNED, result.reason or "pruned"
    if result.diagnosis is None:
        return None, "no epoch with finite loss and accuracy"
    return result.diagnosis.fit, result.diagnosis.reason


def curve_title(trial: optuna.Trial, state: str, epochs: int) -> str:
    """``"trial 3 · PRUNED after 2 epochs"``: the head of a learning-curve figure's title."""
    plural = "" if epochs == 1 else "s"
    return f"trial {trial.number} · {state} after {epochs} epoch{plural}"


def _upload(tracker: Tracker, run_id: str, name: str, write: Callable[[], None]) -> None:
    """Run ``write``, which stores artifact ``name`` on the run.

    An artifact store that cannot take a file must not fail a trial whose metrics are fine
    (as for models, see :mod:`nnsweep.train.modellog`): the failure becomes the run's tag
    ``nnsweep.artifact_error`` and a warning. Only the upload is guarded; a figure or summary
    that cannot be made still raises.
    """
    try:
        write()
    except Exception as exc:  # storage failures come as OSError, MlflowException, …
        reason = mask_url(f"{name}: {type(exc).__name__}: {first_line(exc)}")[:500]
        _log.warning("run %s: artifact not logged (%s)", run_id, reason)
        tracker.set_tags(run_id, {ARTIFACT_ERROR_TAG: reason})
