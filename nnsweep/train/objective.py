"""The Optuna objective: sample hyperparameters, fit the MLP, log every epoch, return the metric.

One call = one trial = one MLflow child run, opened before training and closed after it with
``nnsweep.state`` COMPLETE, PRUNED or FAIL. The objective value is the configured validation
metric reduced over epochs (default: the best ``val_accuracy`` of any epoch).

What a trial produced (value, diagnosis, input example, state, …) is set once, here, on a
:class:`~nnsweep.train.result.TrialResult` that the steps of :mod:`nnsweep.train.steps` receive and
only read.

The model a trial hands on holds the weights of the epoch that gave the objective value: with
``objective.reduce: best`` the best epoch's (kept in memory during the fit, as Keras'
``EarlyStopping(restore_best_weights=True)`` does, and put back after it, whatever early
stopping restored), with ``reduce: last`` the last epoch's. So the logged and exported model
scores exactly the objective value on the validation split.

Under K-fold cross-validation (``dataset.validation: {folds: K}``, or ``auto`` on a small
table) the trial fits once per fold and its value is the mean of the folds' values; how it is
pruned and logged is :mod:`nnsweep.train.cv`'s.

With ``objective.also`` the study is multi-objective: right after the model is built (before
it trains) the trial measures its second objective (trainable parameters, or the one-row CPU
latency p50 of :func:`nnsweep.train.timing.trial_latency_ms`), stores it as the trial's ``also``
attribute, logs it on the run (``params`` / ``latency_ms``), and a COMPLETE trial returns
``[value, second]``. Pruning judges the primary metric (:mod:`nnsweep.train.prune`).

A trial whose loss turns NaN/inf stops at the end of that epoch and fails with the reason;
any exception inside a trial fails that trial alone (the sweep catches it and goes on).
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.features import take_rows
from nnsweep.errors import first_line
from nnsweep.names import FAIL_REASON_KEY, HOST_KEY, PARAMS_ATTR, PID_KEY, RUN_ID_ATTR, SURPLUS_ATTR
from nnsweep.study.objectives import ALSO_ATTR, ALSO_METRICS, also_metric
from nnsweep.track.tracker import dataset_input
from nnsweep.train.callbacks import callback_classes
from nnsweep.train.cv import CrossValidation, pruned_where
from nnsweep.train.model import HyperParams, build_model, count_params
from nnsweep.train.pipeline import eval_batches, train_batches
from nnsweep.train.prune import PruneGate
from nnsweep.train.result import Step, TrialFailure, TrialResult
from nnsweep.train.timing import trial_latency_ms
from nnsweep.train.traineval import train_eval_callback
from nnsweep.urls import mask_url

# Batches run per call into the compiled train/test function. Fewer Python round trips per
# epoch; epoch-end callbacks (logging, pruning, early stopping) and the metrics are unchanged.
STEPS_PER_EXECUTION = 8

if TYPE_CHECKING:
    import optuna

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SpaceSpec, SweepSpec
    from nnsweep.tasks import Task
    from nnsweep.track.tracker import Tracker
    from nnsweep.train.diagnosis import Diagnosis


def sample_params(trial: optuna.Trial, spec: SweepSpec) -> HyperParams:
    """Draw one point of ``spec.space`` (fixed entries are taken as they are)."""
    sp = spec.space
    n_layers = int(sp.n_layers.suggest(trial, "n_layers"))
    return HyperParams(
        n_layers=n_layers,
        units=tuple(int(sp.units.suggest(trial, f"units_{i}")) for i in range(n_layers)),
        activation=str(sp.activation.suggest(trial, "activation")),
        optimizer=str(sp.optimizer.suggest(trial, "optimizer")),
        learning_rate=float(sp.learning_rate.suggest(trial, "learning_rate")),
        lr_schedule=str(sp.lr_schedule.suggest(trial, "lr_schedule")),
        batch_size=int(spec.batch_size_dim.suggest(trial, "batch_size")),
        dropout=float(sp.dropout.suggest(trial, "dropout")),
        epochs=int(spec.epochs_dim.suggest(trial, "epochs")),
        **_techniques(trial, sp),
    )


def _techniques(trial: optuna.Trial, sp: SpaceSpec) -> dict[str, Any]:
    """The tabular techniques of one trial (:mod:`nnsweep.spec.tabular`); a weight decay the
    space leaves out stays None (the optimizer's default)."""
    wd = None if sp.weight_decay is None else float(sp.weight_decay.suggest(trial, "weight_decay"))
    return {
        "weight_decay": wd,
        "batch_norm": bool(sp.batch_norm.suggest(trial, "batch_norm")),
        "input_transform": str(sp.input_transform.suggest(trial, "input_transform")),
        "numeric_embedding": str(sp.numeric_embedding.suggest(trial, "numeric_embedding")),
        "categorical_encoding": str(sp.categorical_encoding.suggest(trial, "categorical_encoding")),
        "embedding_dim": int(sp.embedding_dim.suggest(trial, "embedding_dim")),
    }


def failure_reason(exc: BaseException) -> str:
    """One readable line for why a trial failed (TensorFlow messages are long and nested)."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(exc))
    if "OOM when allocating" in text or isinstance(exc, MemoryError):
        shape = re.search(r"shape\[([^\]]*)\]", text)
        what = f" a tensor of shape [{shape.group(1)}]" if shape else ""
        return f"out of memory allocating{what}; narrow space.units or the batch size"
    if isinstance(exc, TrialFailure):
        return mask_url(str(exc))[:500]
    # masked before it is cut: the reason is stored (trial attribute, run tag) and printed
    first = first_line(text)
    return mask_url(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:500]


def pruned_reason(
    epoch: int, pruner: optuna.pruners.BasePruner, where: str | None = None, judged: str = ""
) -> str:
    """``"pruned at epoch 3 by the median pruner"``, from Optuna's class name of ``pruner``;
    ``where`` replaces ``epoch 3`` (``"fold 2 of 5, epoch 3"``); ``judged`` (a multi-objective
    trial: :meth:`nnsweep.train.prune.PruneGate.describe`) follows."""
    words = re.sub(r"(?<!^)(?=[A-Z])", "_", type(pruner).__name__.removesuffix("Pruner"))
    return f"pruned at {where or f'epoch {epoch}'} by the {words.lower()} pruner{judged}"


def reduce_history(history: dict[str, list[float]], metric: str, direction: str, how: str) -> float:
    """The objective value: best (or last) epoch value of ``metric``."""
    values = [v for v in history.get(metric, []) if math.isfinite(v)]
    if not values:
        raise TrialFailure(f"no finite {metric} was recorded")
    if how == "last":
        return history[metric][-1]
    return max(values) if direction == "maximize" else min(values)


def _diagnose(
    history: dict[str, list[float]], spec: SweepSpec, task: Task, weights_epoch: int | None = None
) -> Diagnosis | None:
    """The fit diagnosis of a trial's history (:mod:`nnsweep.train.diagnosis`).

    Accuracy rules where the task logs ``val_accuracy``, loss rules otherwise (regression); both
    read the dropout-off ``train_eval_*`` curves the fit logged (:mod:`nnsweep.train.traineval`).
    """
    from nnsweep.train.diagnosis import diagnose

    return diagnose(history, spec.diagnosis, weights_epoch)


def counts_toward_target(trial: optuna.trial.FrozenTrial, count: str) -> bool:
    """Whether a finished ``trial`` counts towards the sweep's ``trials`` target.

    ``count="complete"`` (the default of sweep files): only COMPLETE trials. ``"all"``: every
    trial that ran to an end, pruned and failed ones included, like Optuna's ``n_trials``;
    trials that stepped back as surplus never count.
    """
    from optuna.trial import TrialState

    from nnsweep.study.own import is_history

    if is_history(trial):  # copied from an earlier study by a warm start, never run here
        return False
    if count == "complete":
        return trial.state == TrialState.COMPLETE
    return trial.state.is_finished() and not trial.user_attrs.get(SURPLUS_ATTR)


def target_counts(study: optuna.Study, count: str, before: int | None = None) -> tuple[int, int]:
    """(trials counting towards the target, RUNNING trials) of the study, all workers together.

    With ``before``, only RUNNING trials numbered below it are counted.
    """
    from optuna.trial import TrialState

    done = running = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.RUNNING:
            running += before is None or t.number < before
        else:
            done += counts_toward_target(t, count)
    return done, running


class Objective:
    """Callable handed to ``study.optimize``.

    Args:
        spec: the validated sweep; ``spec.trials`` is the target other workers may fill.
        dataset: preprocessed splits (the test split is not touched here).
        tracker: MLflow writer; ``parent_run_id`` is this invocation's parent run.
        steps: run after each fit as ``step(trial, result)``, pruned and failed trials
            included; the sweep builds them (:func:`nnsweep.train.steps.default_steps`) with
            what it already holds and hands them over.
    """

    def __init__(
        self,
        spec: SweepSpec,
        dataset: Dataset,
        tracker: Tracker,
        parent_run_id: str,
        steps: list[Step],
    ) -> None:
        self.spec = spec
        self.data = dataset
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.steps = steps
        self.target = spec.trials
        self.input_example = take_rows(dataset.x_train, np.arange(min(2, len(dataset.y_train))))
        self.data_input = dataset_input(dataset)  # logged on every trial's run
        self.cv = CrossValidation(spec, dataset, tracker) if dataset.folds else None

    def _is_surplus(self, trial: optuna.Trial) -> bool:
        """True when other workers' earlier trials already fill the target.

        Two workers can start a trial at the same moment for the last slot; the one with the
        higher number steps back before training, so the study ends at exactly ``target``.
        """
        if self.target is None:
            return False
        done, running_before = target_counts(
            trial.study, self.spec.trials_count, before=trial.number
        )
        return done + running_before >= self.target

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        import optuna

        from nnsweep.train.runtime import release_trial_memory

        if self._is_surplus(trial):
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise optuna.TrialPruned("not started: the study's target was reached by others")
        hp = sample_params(trial, self.spec)
        params = hp.as_params()
        trial.set_user_attr(PARAMS_ATTR, params)
        trial.set_user_attr(HOST_KEY, socket.gethostname())
        trial.set_user_attr(PID_KEY, os.getpid())
        run_id = self.tracker.start_trial(
            self.parent_run_id, trial.study.study_name, trial.number, params
        )
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        self.tracker.log_dataset(run_id, self.data_input)

        result = TrialResult(trial.number, run_id, hp, self.input_example)
        gate = PruneGate(trial)  # the second objective is set once the model is built
        obj = self.spec.objective
        try:
            if self.cv is not None:  # K fits; result.value is the folds' mean
                self.cv.run(trial, result, self._fit, gate)
            else:
                self._fit(trial, result, gate=gate)
            if result.pruned_at is not None:
                result.state = "PRUNED"
                where = pruned_where(result.cv, result.pruned_at)
                judged = gate.describe(obj.key, also_metric(trial.study))
                result.reason = pruned_reason(result.pruned_at, trial.study.pruner, where, judged)
                raise optuna.TrialPruned(result.reason)
            if result.cv is None:
                result.value = reduce_history(result.history, obj.key, obj.goal, obj.reduce)
            if result.value is None:  # a fit always reports its objective; never a silent NaN
                raise RuntimeError(f"trial {trial.number} finished without a {obj.key} value")
            result.state = "COMPLETE"
            if gate.multi:  # [primary, second], as the study's directions and metric names
                if gate.also is None:
                    raise RuntimeError(f"trial {trial.number} finished without its {obj.also}")
                return [result.value, gate.also]
            return result.value
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            result.reason = "interrupted (Ctrl-C)"
            trial.set_user_attr(FAIL_REASON_KEY, result.reason)  # a safe point: see _proc
            raise
        except Exception as exc:
            result.reason = failure_reason(exc)
            trial.set_user_attr(FAIL_REASON_KEY, result.reason)
            raise
        finally:
            try:
                result.diagnosis = _diagnose(
                    result.history, self.spec, self.data.task, result.weights_epoch
                )
                for step in self.steps:
                    step(trial, result)
            finally:
                failed = result.state == "FAIL"
                self.tracker.end_trial(run_id, result.state, result.reason if failed else None)
                result.model = None
                release_trial_memory()

    def _fit(
        self,
        trial: optuna.Trial,
        result: TrialResult,
        data: Dataset | None = None,
        *,
        prefix: str = "",
        pruning: Any = None,
        gate: PruneGate,
    ) -> None:
        """Fit ``result.params`` on ``data`` (default: the sweep's splits; a fold's under
        cross-validation, whose epochs are logged under ``prefix`` and reported by ``pruning``,
        a callback with ``pruned_at``, instead of the per-epoch pruning callback). ``gate``
        decides on pruning, and gets the trial's second objective on its first fit."""
        import keras

        Interrupter, EpochLogger, PruningCallback, WeightKeeper = callback_classes()
        hp = result.params
        data = data or self.data
        seed = self.spec.seed + trial.number
        keras.utils.set_random_seed(seed)
        model = build_model(
            hp,
            **data.model_kwargs(),
            train_size=len(data.y_train),
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        result.model = model
        size = count_params(
            hp, input_dim=data.input_width, output_units=data.n_outputs, schema=data.schema
        )
        self.tracker.log_metrics(result.run_id, {"trainable_params": size})
        if gate.multi and gate.also is None:  # measured once a trial (the first fold's model)
            self._second_objective(trial, result.run_id, gate, model, data, size)

        obj = self.spec.objective
        logger = EpochLogger(self.tracker, result.run_id, result.history, prefix)
        pruner = pruning if pruning is not None else PruningCallback(gate, obj.metric)
        # Before early stopping, which may set its own best weights at the same epoch end.
        keeper = WeightKeeper(obj.metric, obj.direction == "maximize", obj.reduce)
        # Interrupter first (a pending Ctrl-C stops the fit before the epoch is logged), then
        # train_eval: it adds the dropout-off train_eval_* scores to the logs the others get.
        train_eval = train_eval_callback(
            data.task, data.x_train, data.y_train, len(data.y_val), self.spec.seed
        )
        callbacks: list[Any] = [Interrupter(), train_eval, logger, pruner, keeper]
        es = self.spec.train.early_stopping
        if es is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=obj.metric,
                    mode="max" if obj.direction == "maximize" else "min",
                    patience=es.patience,
                    min_delta=es.min_delta,
                    restore_best_weights=es.restore_best_weights,
                )
            )
        start = time.perf_counter()
        model.fit(  # from tf.data pipelines: ~25 % faster than arrays on small data
            train_batches(data.x_train, data.y_train, batch_size=hp.batch_size, seed=seed),
            validation_data=eval_batches(data.x_val, data.y_val, batch_size=hp.batch_size),
            epochs=hp.epochs,
            shuffle=False,  # the pipeline reshuffles every epoch itself
            callbacks=callbacks,
            verbose=0,
        )
        result.seconds = time.perf_counter() - start
        keeper.restore()
        result.weights_epoch, result.weights_score = keeper.epoch, keeper.score
        if logger.nan_epoch is not None:
            raise TrialFailure(
                f"loss became NaN/inf at epoch {logger.nan_epoch}; lower the learning rate "
                "or pick another optimizer"
            )
        result.pruned_at = pruner.pruned_at

    def _second_objective(
        self, trial: optuna.Trial, run_id: str, gate: PruneGate, model: Any, data: Dataset,
        size: int,
    ) -> None:  # fmt: skip
        """Measure the trial's second objective (``objective.also``) before it trains: its
        trainable parameters, or the one-row CPU latency p50 of the built model
        (:func:`nnsweep.train.timing.trial_latency_ms`); stored on the trial as ``also`` (so a
        pruned trial has it too) and logged on its run (``params`` / ``latency_ms``)."""
        also = self.spec.objective.also
        value = float(size) if also == "params" else trial_latency_ms(model, data)
        gate.also = value
        trial.set_user_attr(ALSO_ATTR, value)
        self.tracker.log_metrics(run_id, {ALSO_METRICS[str(also)]: value})
