"""The Python API: a sweep from a file or from code, run in this process, its best trial.

What ``nnsweep run`` / ``nnsweep best`` do, for a notebook or a script, with the same stores
and defaults (``./mlflow.db`` and the Optuna storage beside it, or ``$MLFLOW_TRACKING_URI`` and
``$NNSWEEP_STORAGE``) and the same errors (:mod:`nnsweep.errors`; nothing is printed). The
sweep runs in the calling process, trial after trial, as ``nnsweep run --jobs 1`` does; more
workers join a study by running the same sweep against the same stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnsweep.spec.config import SweepSpec
    from nnsweep.sweep.run import SweepResult


def spec_from_dict(data: Mapping[str, Any], source: str = "spec") -> SweepSpec:
    """A sweep spec built in code: ``data`` holds what a sweep file would (``name``,
    ``dataset``, ``trials``, ``space``, …), validated by the same rules.

    Raises:
        SpecError: the first problem, named with its field (``source`` prefixes it).
    """
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import _validate  # the sweep file's own validation and error wording

    if not isinstance(data, Mapping):
        raise SpecError(
            f"{source}: a sweep spec is a mapping (name, dataset, trials, …), not "
            f"{type(data).__name__}"
        )
    return _validate(dict(data), source)


def run_sweep(
    spec: SweepSpec | str | Path,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    study: str | None = None,
    progress: bool = False,
) -> SweepResult:
    """Run (or resume) a sweep here until its study has ``trials`` trials, as ``nnsweep run``.

    Args:
        spec: a :class:`SweepSpec` (from :func:`load_spec` or :func:`spec_from_dict`) or the
            path of a sweep file.
        storage: Optuna storage URL [default: ``$NNSWEEP_STORAGE``, else beside the MLflow file].
        tracking_uri: MLflow tracking URI [default: ``$MLFLOW_TRACKING_URI``, else
            ``sqlite:///mlflow.db``]. Relative SQLite and journal files are taken from the
            folder this is called in, and stay there if the process changes folder later.
        study: the study's name [default: the spec's ``name``].
        progress: print one line per finished trial on stderr.

    Returns:
        The run's :class:`~nnsweep.sweep.run.SweepResult`: ``study_name``, ``n_complete``,
        ``ran`` (trials by state), ``best`` (``number``, ``value``, ``params``, ``run_id``).

    Raises:
        SpecError, DataError, StorageError: bad input, before any store is written.
        SweepFailedError: trials ran but none completed.
    """
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import SweepSpec, load_spec
    from nnsweep.stores import pinned, resolve
    from nnsweep.sweep.prepare import preflight
    from nnsweep.sweep.progress import SweepProgress
    from nnsweep.sweep.run import run_sweep as run

    text = None
    if isinstance(spec, str | Path):
        text = Path(spec).read_text(encoding="utf-8") if Path(spec).is_file() else None
        spec = load_spec(spec)
    elif not isinstance(spec, SweepSpec):
        raise SpecError(
            f"spec: a SweepSpec or a sweep file's path, not {type(spec).__name__}; "
            "build one with nnsweep.spec_from_dict"
        )
    storage_url, uri = map(pinned, resolve(storage, tracking_uri))  # a later chdir changes nothing
    hooks: list[Any] = []
    on_start = None
    if progress:
        shown = SweepProgress(quiet=True, metric=spec.objective.key, count=spec.trials_count)
        hooks, on_start = [shown], shown.on_start
    prepared = preflight(spec, storage_url=storage_url, tracking_uri=uri, study_name=study)
    return run(
        prepared,
        spec_text=text,
        hooks=hooks,
        on_start=on_start,
    )


def best_trial(study: str, *, storage: str | None = None) -> dict[str, Any]:
    """The study's best COMPLETE trial, as ``nnsweep best --json`` prints it: ``number``,
    ``value``, ``params`` (every hyperparameter, fixed ones too) and ``run_id`` (its MLflow
    run). A multi-objective study (``objective.also``): the best by the primary value, plus
    ``also`` (the second metric), ``also_value`` (this trial's) and ``front`` (the Pareto
    front, best primary first: ``number``, ``value``, ``also``, ``run_id``). ``storage``
    defaults as in :func:`run_sweep`.

    Raises:
        StudyNotFoundError: the storage holds no such study.
        NoCompleteTrialError: the study has no COMPLETE trial yet.
    """
    from nnsweep.stores import pinned, resolve
    from nnsweep.study.status import best_summary
    from nnsweep.study.storage import load_study

    storage_url = pinned(resolve(storage, None)[0])
    return best_summary(load_study(study, storage_url))
