"""Run a sweep: spec → data → stores → study → objective, until enough trials are COMPLETE.

Order matters for bad input: the spec is validated, the data loaded and both stores checked
*before* anything is written, so a mistake leaves no trace in either store.

Running the same sweep again resumes it: the study is loaded, trials left RUNNING by a dead
process are failed (and retried once), and trials run until ``spec.trials`` are COMPLETE in
total. Each trial opens exactly one MLflow run, so nothing is logged twice.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnsweep._proc import check_interrupt, deferred_interrupts
from nnsweep.errors import SweepFailedError
from nnsweep.names import (
    CHANGES_TAG,
    DATASET_TAG,
    EXPERIMENT_ATTR,
    FAIL_REASON_KEY,
    HOST_KEY,
    PID_KEY,
    RUN_ID_ATTR,
    SPEC_ATTR,
    STOP_KEY,
    STORAGE_TAG,
    SURPLUS_ATTR,
    WARM_START_KEY,
)
from nnsweep.spec.start import start_points
from nnsweep.stores import retry_race, startup_lock
from nnsweep.study.comparable import describe_changes, spec_changes
from nnsweep.study.storage import create_or_resume, reap_dead_local_trials
from nnsweep.study.warm import start_new_study
from nnsweep.sweep.stop import stop_rule
from nnsweep.track.tracker import (
    DIRECTION_PARAM,
    OBJECTIVE_METRIC_PARAM,
    OBJECTIVE_REDUCE_PARAM,
    Tracker,
)
from nnsweep.train.objective import target_counts
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from nnsweep.spec.config import SweepSpec
    from nnsweep.sweep.prepare import Prepared

MAX_CONSECUTIVE_FAILURES = 5
POLL_SECONDS = 2.0

TrialHook = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]


@dataclass
class SweepResult:
    study_name: str
    experiment_id: str
    parent_run_id: str | None
    n_complete: int
    target: int | None
    ran: dict[str, int] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    stopped: str | None = None  # why the stop rule ended the sweep (nnsweep.sweep.stop)
    study: optuna.Study | None = field(default=None, repr=False, compare=False)


class _Budget:
    """Optuna callback: counts what this invocation ran and says when to stop.

    Stops when the study has ``target`` trials that count (COMPLETE ones, or every finished one
    with ``trials_count: all``), or after ``max_failures`` failed trials in a row (a space
    where every trial fails should not loop forever).
    """

    def __init__(
        self, target: int | None, count: str, max_failures: int = MAX_CONSECUTIVE_FAILURES
    ):
        self.target, self.count, self.max_failures = target, count, max_failures
        self.consecutive_failures = 0
        self.ran: dict[str, int] = {}
        self.reasons: list[str] = []
        self.stop = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna.trial import TrialState

        if trial.user_attrs.get(SURPLUS_ATTR):
            return
        self.ran[trial.state.name] = self.ran.get(trial.state.name, 0) + 1
        if trial.state == TrialState.FAIL:
            self.consecutive_failures += 1
            reason = trial.user_attrs.get(FAIL_REASON_KEY, "failed")
            self.reasons.append(f"trial {trial.number}: {reason}")
        else:
            self.consecutive_failures = 0
        if self.consecutive_failures >= self.max_failures:
            self.stop = True
        if self.target is not None and target_counts(study, self.count)[0] >= self.target:
            self.stop = True


def n_complete(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _grid_exhausted(study: optuna.Study) -> bool:
    from nnsweep.study.samplers import grid_exhausted

    return grid_exhausted(study)


def _fail_stale(study: optuna.Study) -> None:
    """Fail trials of dead workers: local ones at once, others after the heartbeat grace.

    Optuna's ``fail_stale_trials`` does nothing on a storage without heartbeats (a journal).
    """
    import warnings

    import optuna

    reap_dead_local_trials(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_sweep(
    prepared: Prepared,
    *,
    spec_text: str | None = None,
    hooks: list[TrialHook] | None = None,
    on_start: Callable[[optuna.Study, int, int | None], None] | None = None,
) -> SweepResult:
    """Run (or resume) the sweep ``spec`` and return what it did.

    Args:
        prepared: what :func:`nnsweep.sweep.prepare.preflight` made of the sweep once: the
            spec fitted to the data, the data, and the checked stores (never made again here).
        spec_text: the sweep file's text, logged on the parent run.
        hooks: extra Optuna callbacks (progress display), called after every trial.
        on_start: called once with (study, complete trials so far, target) before trials run.

    Raises:
        SweepFailedError: trials ran but none completed.
    """
    import optuna

    from nnsweep.data.modelio import ModelIO
    from nnsweep.train.objective import Objective
    from nnsweep.train.steps import default_steps

    spec, dataset = prepared.spec, prepared.dataset
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress lines say it all
    study, tracker = _open(prepared)
    done = target_counts(study, spec.trials_count)[0]
    result = SweepResult(
        prepared.study_name, tracker.experiment_id, None, n_complete(study), spec.trials
    )
    result.study = study  # the caller's summary reads it, never loading the study again
    if spec.trials is not None and done >= spec.trials:
        result.best = _best(study)
        return result

    parent = _start_parent(prepared, study, tracker, spec_text)
    result.parent_run_id = parent
    budget = _Budget(spec.trials, spec.trials_count)
    rule = stop_rule(spec, dataset, lambda n, figures: tracker.log_metrics(parent, figures, step=n))
    steps = default_steps(spec, tracker, ModelIO.of(dataset))
    objective = Objective(spec, dataset, tracker, parent, steps)
    callbacks = [budget, rule, _BestSoFar(tracker, parent), *(hooks or [])]
    if on_start is not None:
        on_start(study, done, spec.trials)
    status = "FAILED"
    try:
        _trial_loop(study, spec, objective, budget, rule, callbacks)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if rule.reason:
            tracker.set_tags(parent, {STOP_KEY: rule.reason})
        result.stopped = rule.reason
        tracker.end_parent(parent, status)
        result.ran = budget.ran
        result.n_complete = n_complete(study)
        result.best = _best(study)

    from nnsweep.results.pareto import log_front
    from nnsweep.results.report import log_study_report  # trials table, Optuna plots, fit counts

    log_study_report(study, tracker, parent)
    log_front(study, tracker, parent)  # objective.also: the Pareto front (else logs nothing)

    if budget.ran and not budget.ran.get("COMPLETE") and budget.ran.get("FAIL"):
        shown = "; ".join(budget.reasons[-3:])
        raise SweepFailedError(
            f"all {sum(budget.ran.values())} trials of this run failed ({shown}); "
            "fix the sweep file's space and run it again"
        )
    return result


def _open(prepared: Prepared) -> tuple[optuna.Study, Tracker]:
    """The study (created, resumed or warm-started) and the tracker of its experiment.

    Workers started at the same moment create the stores, the study and the experiment one
    after the other (local files), or retry what another one did first (servers).
    """
    spec, name = prepared.spec, prepared.study_name
    with startup_lock(prepared.storage_url, prepared.tracking_uri):
        study = create_or_resume(spec, prepared.storage_url, name, dataset=prepared.dataset)
        # start_with and the warm start (planned and checked by preflight): a new study only
        start_new_study(study, start_points(spec), prepared.warm)
        reap_dead_local_trials(study)
        tracker = Tracker(prepared.tracking_uri, spec.name)
        _close_orphan_runs(study, tracker)
        if study.user_attrs.get(EXPERIMENT_ATTR) != tracker.experiment_id:
            retry_race(
                lambda: study.set_user_attr(EXPERIMENT_ATTR, tracker.experiment_id),
                f"study {name!r}: recording its experiment",
            )
    return study, tracker


def _start_parent(
    prepared: Prepared, study: optuna.Study, tracker: Tracker, spec_text: str | None
) -> str:
    """Open this invocation's parent run: where it ran, the data, the settings, the spec."""
    spec, dataset = prepared.spec, prepared.dataset
    # what this invocation changes against the study's first spec: only what keeps its
    # trials comparable gets this far (see nnsweep.study.comparable)
    changes = spec_changes(study.user_attrs.get(SPEC_ATTR), spec)
    warm = study.user_attrs.get(WARM_START_KEY)
    parent = tracker.start_parent(
        prepared.study_name,
        tags={
            HOST_KEY: socket.gethostname(),
            PID_KEY: str(os.getpid()),
            STORAGE_TAG: mask_url(prepared.storage_url),
            DATASET_TAG: f"{dataset.name} ({dataset.source})",
            **({CHANGES_TAG: describe_changes(changes)[:5000]} if changes else {}),
            **({WARM_START_KEY: warm} if warm else {}),
        },
        params={
            "dataset": dataset.name,
            "task": dataset.task.kind,
            **({"target": dataset.target} if dataset.target is not None else {}),
            "train_size": dataset.sizes["train"],
            "val_size": dataset.scored_rows,  # cross-validated: every training row
            "validation": f"{dataset.folds} folds" if dataset.folds else "holdout",
            "sampler": spec.sampler.name,
            "pruner": spec.pruner.name,
            OBJECTIVE_METRIC_PARAM: spec.objective.metric,
            OBJECTIVE_REDUCE_PARAM: spec.objective.reduce,
            DIRECTION_PARAM: spec.objective.direction,
            **({"objective_also": spec.objective.also} if spec.objective.also else {}),
            "target_trials": spec.trials,
            "timeout": spec.timeout,
            "seed": spec.seed,
        },
    )
    if spec_text is not None:
        tracker.client.log_text(parent, spec_text, "sweep.yaml")
    tracker.log_dict(parent, spec.model_dump(mode="json"), "spec.json")  # overrides applied
    return parent


class _BestSoFar:
    """Optuna callback: a trial that becomes the study's best updates the parent run."""

    def __init__(self, tracker: Tracker, parent: str) -> None:
        self.tracker, self.parent = tracker, parent

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna.trial import TrialState

        if trial.state != TrialState.COMPLETE:
            return
        best = _best(study)
        if best is not None and best["number"] == trial.number:
            self.tracker.update_best(
                self.parent, best["number"], best["value"], best["params"], n_complete(study)
            )


def _trial_loop(
    study: optuna.Study,
    spec: SweepSpec,
    objective: Callable[[optuna.Trial], float | list[float]],
    budget: _Budget,
    rule: Any,
    callbacks: list[Any],
) -> None:
    """Run trials until the budget, the timeout, the stop rule or the grid says stop.

    One trial per ``optimize()`` call: between trials the loop checks the shared budget, so
    several workers on one study stop at exactly ``trials`` counted trials. The timeout is a
    budget, not only a start line: no trial starts after it, nor one this worker expects to
    end after it (now + the median time of the trials it ran so far). Ctrl-C/SIGTERM
    (under the CLI's handler) stops at a safe point, between batches or trials, never inside
    a storage write that would leave the store's session broken.
    """
    deadline = time.monotonic() + spec.timeout if spec.timeout else None
    took: list[float] = []  # seconds of each trial this worker ran
    with deferred_interrupts():
        while not budget.stop and not rule.check(study):
            check_interrupt()
            if deadline is not None and past_deadline(time.monotonic(), took, deadline):
                break
            if spec.trials is not None:
                counted, running = target_counts(study, spec.trials_count)
                if counted >= spec.trials:
                    break
                if counted + running >= spec.trials:  # the last trials run elsewhere
                    time.sleep(POLL_SECONDS)
                    _fail_stale(study)
                    continue
            started = time.monotonic()
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks)
            took.append(time.monotonic() - started)
            if _grid_exhausted(study):
                break


def past_deadline(now: float, took: list[float], deadline: float) -> bool:
    """Whether a new trial should not start: the deadline has passed, or a trial of the
    median length of ``took`` (this worker's trials so far) would end after it."""
    if now >= deadline:
        return True
    return bool(took) and now + statistics.median(took) > deadline


def _best(study: optuna.Study) -> dict[str, Any] | None:
    from nnsweep.study.storage import best_trial

    return best_trial(study) if n_complete(study) else None


def _close_orphan_runs(study: optuna.Study, tracker: Tracker) -> None:
    """Close MLflow runs left RUNNING by trials that Optuna no longer holds as running."""
    from optuna.trial import TrialState

    finished = {
        t.user_attrs[RUN_ID_ATTR]
        for t in study.get_trials(deepcopy=False)
        if t.state != TrialState.RUNNING and RUN_ID_ATTR in t.user_attrs
    }
    tracker.close_orphans(study.study_name, finished)
