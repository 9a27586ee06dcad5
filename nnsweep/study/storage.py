"""Optuna side: storage URLs, sampler and pruner from the spec, create/resume, summaries.

Storage is an Optuna RDB URL (``sqlite:///optuna.db`` by default, beside ``mlflow.db`` but
never the same file, since both keep Alembic version tables; ``postgresql+psycopg://…`` to
share a study between workers) or ``journal:///path/file.log`` for Optuna's JournalStorage.
RDB storages run Optuna's heartbeat, so a trial whose process died is failed and retried.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

from nnsweep._proc import local_and_dead
from nnsweep.errors import (
    NnsweepError,
    NoCompleteTrialError,
    StorageError,
    StudyNotFoundError,
    first_line,
)
from nnsweep.names import (
    COMPARABLE_ATTR,
    HOST_KEY,
    OBJECTIVE_ATTR,
    PARAMS_ATTR,
    PID_KEY,
    RUN_ID_ATTR,
    SPEC_ATTR,
)
from nnsweep.stores import check_storage, connect_args, journal_path, retry_race
from nnsweep.study.comparable import check_resume, comparable_settings, settings_of_spec
from nnsweep.study.objectives import (
    ALSO_METRICS,
    primary_direction,
    primary_value,
    study_directions,
)
from nnsweep.study.own import own_best
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec

HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
MAX_RETRY = 1


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; RDB storages get heartbeat and a retry policy."""
    import optuna
    from optuna.storages import RDBStorage

    journal = journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(journal)))
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    def rdb() -> RDBStorage:  # creates Optuna's tables in a new database
        return RDBStorage(
            url,
            engine_kwargs={"connect_args": connect_args(url)} if "postgresql" in url else None,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            heartbeat_stale_trial_callback=_retry_callback(),
        )

    try:
        return retry_race(rdb, f"storage {mask_url(url)}: creating Optuna's tables")
    except NnsweepError:
        raise
    except Exception as exc:
        reason = mask_url(first_line(exc))[:200]
        raise StorageError(f"storage {mask_url(url)}: cannot open ({reason})") from None


def _retry_callback() -> Any:
    """Optuna's retry policy: a trial failed by a dead process is re-queued once."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def create_or_resume(
    spec: SweepSpec, storage_url: str, study_name: str, *, dataset: Dataset | None = None
) -> optuna.Study:
    """Create the study, or load it to go on where it stopped.

    A new study stores the spec and the settings that make its trials comparable
    (:mod:`nnsweep.study.comparable`); a study that has trials is resumed only with the same ones.

    Args:
        dataset: the loaded data, so its content fingerprint is stored and compared too.

    Raises:
        StorageError: the study exists with another direction, other objectives (a second
            objective added, dropped or changed: ``objective.also``) or other comparable
            settings; nothing has been written then.
    """
    storage = open_storage(storage_url)
    return retry_race(
        lambda: _create_or_resume(spec, storage, study_name, dataset),
        f"study {study_name!r}: creating it in {mask_url(storage_url)}",
    )


def _create_or_resume(
    spec: SweepSpec,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    dataset: Dataset | None,
) -> optuna.Study:
    import optuna

    from nnsweep.study.samplers import make_pruner, sweep_sampler

    settings = comparable_settings(spec, dataset)
    n_existing, upgrade = 0, False
    stored: dict[str, Any] = {}
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        existing = None
    obj = spec.objective
    directions = study_directions(str(obj.direction), obj.also)
    if existing is not None:
        n_existing = len(existing.get_trials(deepcopy=False))
        _check_objectives(study_name, existing, directions, _metric_names(spec))
        stored = existing.user_attrs.get(COMPARABLE_ATTR) or {}
        if not stored:  # a study from before the settings were stored: read its spec
            stored, upgrade = settings_of_spec(existing.user_attrs.get(SPEC_ATTR)), True
        if n_existing:  # a study without trials has nothing to mix up
            check_resume(study_name, stored, settings)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=sweep_sampler(spec),
        pruner=make_pruner(spec),
        directions=directions,  # type: ignore[arg-type]  # "maximize"/"minimize", checked
        load_if_exists=True,
    )
    if n_existing == 0:
        if obj.also is not None:
            with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
                warnings.simplefilter("ignore")
                study.set_metric_names(_metric_names(spec))
        study.set_user_attr(SPEC_ATTR, spec.model_dump(mode="json"))
        study.set_user_attr(OBJECTIVE_ATTR, spec.objective.metric)
        study.set_user_attr(COMPARABLE_ATTR, settings)
    elif upgrade or settings.keys() - stored.keys():  # fill in what was not stored yet
        study.set_user_attr(COMPARABLE_ATTR, {**settings, **stored})
    return study


def _metric_names(spec: SweepSpec) -> list[str]:
    """The study's metric names: the primary metric, and the second objective's."""
    obj = spec.objective
    return [obj.key] if obj.also is None else [obj.key, ALSO_METRICS[obj.also]]


def _check_objectives(
    study_name: str, existing: optuna.Study, directions: list[str], names: list[str]
) -> None:
    """Refuse to resume ``existing`` with other objectives (count, directions, the second one).

    Raises:
        StorageError: naming what the study optimises and the fix.
    """
    have = [d.name.lower() for d in existing.directions]
    stored_names: list[str | None] = list(existing.metric_names or [])
    same_second = len(names) < 2 or not stored_names or stored_names[1:] == names[1:]
    if have == directions and same_second:
        return
    if len(have) == len(directions) == 1:
        raise StorageError(
            f"study {study_name!r} already exists and is {have[0]}d; pick another name with --study"
        )
    was = " and ".join(
        f"{d}s {n}" if n else f"{d}s"
        for d, n in zip(have, stored_names or [None] * len(have), strict=False)
    )
    now = " and ".join(f"{d}s {n}" for d, n in zip(directions, names, strict=False))
    raise StorageError(
        f"study {study_name!r} already exists and {was}, but this sweep "
        f"{now} (objective.also); pick another name with --study"
    )


def load_study(study_name: str, storage_url: str) -> optuna.Study:
    """Load an existing study. Raises :class:`StudyNotFoundError` listing the ones there are."""
    import optuna

    check_storage(storage_url)
    if _journal_missing(storage_url):  # read-only: do not create an empty journal
        raise StudyNotFoundError(
            f"no study {study_name!r} in {mask_url(storage_url)} "
            "(studies: none yet; run `nnsweep run SWEEP` first)"
        )
    storage = open_storage(storage_url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        have = ", ".join(names) if names else "none yet; run `nnsweep run SWEEP` first"
        raise StudyNotFoundError(
            f"no study {study_name!r} in {mask_url(storage_url)} (studies: {have})"
        ) from None


def list_studies(storage_url: str) -> list[str]:
    import optuna

    check_storage(storage_url)
    if _journal_missing(storage_url):
        return []
    storage = open_storage(storage_url)
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage))


def _journal_missing(storage_url: str) -> bool:
    """Whether ``storage_url`` is a journal file that does not exist (yet): no studies."""
    path = journal_path(storage_url)
    return path is not None and not path.exists()


def reap_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials started on this host by a process that no longer exists.

    Heartbeats catch dead workers anywhere, but only after the grace period; a trial whose
    process ran here and is gone can be failed at once, so a re-run right after a crash resumes
    cleanly. Each trial failed here is re-queued once by :class:`RetryHeartbeatStaleTrialCallback`,
    as the heartbeat's failures are; a trial another process finished meanwhile is left alone.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    reaped: list[int] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not local_and_dead(t.user_attrs.get(HOST_KEY), t.user_attrs.get(PID_KEY)):
            continue
        try:
            failed = study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        except UpdateFinishedTrialError:  # finished by another process while we told it
            continue
        if failed.state != TrialState.FAIL:  # it completed after all
            continue
        reaped.append(t.number)
        if not _is_retried(study, t.number):  # another reaper may have re-queued it
            _retry_callback()(study, failed)
    return reaped


def _is_retried(study: optuna.Study, number: int) -> bool:
    """Whether some trial of ``study`` already retries trial ``number``."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return any(
            Retry.retried_trial_number(t) == number for t in study.get_trials(deepcopy=False)
        )


def count_states(study: optuna.Study) -> Counter[str]:
    """Trial counts by state name, on any storage (``nnsweep.statusdb`` has a faster SQL path)."""
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Trial counts by state, the best trial and the task, as ``status --json`` prints them."""
    from optuna.trial import TrialState

    from nnsweep.tasks import task_of

    counts = count_states(study)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "direction": primary_direction(study),
        "metric": study.user_attrs.get(OBJECTIVE_ATTR, "value"),
        "n_trials": sum(counts.values()),
        "states": {s.name: counts.get(s.name, 0) for s in TrialState},
        "best": None,
    }
    if counts.get(TrialState.COMPLETE.name) and (best := own_best(study)) is not None:
        summary["best"] = {"number": best.number, "value": primary_value(best)}
    summary["task"] = task_of(study.user_attrs)
    return summary


def best_trial(study: optuna.Study) -> dict[str, Any]:
    """The best COMPLETE trial: number, value, full params, MLflow run id (multi-objective:
    the best primary value, :func:`nnsweep.study.own.own_best`)."""
    best = own_best(study)
    if best is None:
        raise NoCompleteTrialError(
            f"study {study.study_name!r} has no COMPLETE trial yet; run or resume it with "
            "`nnsweep run SWEEP`"
        )
    return {
        "number": best.number,
        "value": primary_value(best),
        "params": best.user_attrs.get(PARAMS_ATTR, best.params),
        "run_id": best.user_attrs.get(RUN_ID_ATTR),
    }
