"""Prepare a run once: the spec checked and fitted to its data, the data loaded, the stores checked.

:func:`preflight` is the one door into a run. Its :class:`Prepared` is handed down to the
sweep (:mod:`nnsweep.sweep.run`) and the worker parent (:mod:`nnsweep.sweep.workers`), which
never load or check again what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnsweep.data.load import sweep_dataset
from nnsweep.errors import SpecError
from nnsweep.stores import check_stores
from nnsweep.study.warm import WarmPlan, plan_warm_start

if TYPE_CHECKING:
    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec


@dataclass(frozen=True)
class Prepared:
    """A sweep ready to run: made once per process by :func:`preflight`.

    Attributes:
        spec: the sweep, with what depends on the data filled in (the task's objective,
            the default batch size).
        dataset: the loaded splits (the test split is not read by a sweep).
        storage_url: the Optuna storage, checked.
        tracking_uri: the MLflow tracking URI, checked.
        study_name: the study (``--study``, else the spec's name).
    """

    spec: SweepSpec
    dataset: Dataset
    storage_url: str
    tracking_uri: str
    study_name: str
    warm: WarmPlan | None = None  # the warm start, read and mapped (nnsweep.study.warm)
    notes: tuple[str, ...] = ()  # what zero-config chose (nnsweep.spec.defaults), to print once


def preflight(
    spec: SweepSpec,
    *,
    storage_url: str,
    tracking_uri: str,
    study_name: str | None = None,
    jobs: int = 1,
    warm_storage: str | None = None,
) -> Prepared:
    """Every check that can refuse a sweep, done before either store is written to, and what
    the run needs, made once: the data loaded, the spec fitted to it, the stores checked.

    ``nnsweep run``, the Python API and the parent of ``run --jobs N`` call it once per process
    and hand the result down (:func:`nnsweep.sweep.run.run_sweep`,
    :func:`nnsweep.sweep.workers.run_jobs`), so bad input is refused the same way, once, with
    nothing written, and no store is opened twice to be checked.

    Raises:
        SpecError, DataError, StorageError: the first problem found, worded with its fix.
    """
    if study_name is not None:
        check_study_name(study_name)
    notes: list[str] = []
    spec, dataset = prepare(spec, notes)
    # the input width is known now (a table's only once loaded): refuse a space whose
    # largest model (over its widest input block) is over limits.max_params before any
    # store is written
    spec.check_model_size(widest_input(spec, dataset), dataset.n_outputs)
    check_stores(storage_url, tracking_uri, jobs=jobs)
    name = study_name or spec.name
    warm = plan_warm_start(spec, dataset, storage_url, name, warm_storage)  # reads only
    return Prepared(spec, dataset, storage_url, tracking_uri, name, warm, tuple(notes))


def prepare(spec: SweepSpec, notes: list[str] | None = None) -> tuple[SweepSpec, Dataset]:
    """The sweep's data, loaded (cached per process), and ``spec`` with its task's objective
    and, when the file names no batch size, the default one for the training split's size.

    The objective is checked against the task here, once the task is known (a table's may be
    inferred from its target), and defaulted when the file names none: ``val_accuracy`` for
    classification, ``val_mae`` for regression.

    Raises:
        DataError: the data cannot be read or has no usable target.
        SpecError: the objective is not one the task logs (the allowed ones are listed).
    """
    dataset = sweep_dataset(spec)
    return fit_to_data(spec, dataset, notes), dataset


def fit_to_data(spec: SweepSpec, dataset: Dataset, notes: list[str] | None = None) -> SweepSpec:
    """``spec`` with what depends on the loaded data filled in: the task's objective (checked),
    ``dataset.validation`` as ``auto`` resolved it (see :func:`resolved_validation`), the
    zero-config defaults where the file left them out (a search space, an epoch budget and a
    trial budget for this task and size, one trial for a space with nothing to sample:
    :func:`nnsweep.spec.defaults.apply_defaults`, whose notes are appended to ``notes``) and,
    when the file names no batch size, the default one for the training split's size (under
    cross-validation a fold's: (K-1)/K of the training part).

    A pure function of the spec and the data: every ``--jobs`` worker and every resume gets
    the same spec, which the study stores and compares.

    Raises:
        SpecError: a table-only technique on a dataset without named columns.
    """
    from nnsweep.spec.defaults import apply_defaults
    from nnsweep.spec.tabular import table_only_problem

    n_train = dataset.sizes["train"]
    if dataset.folds:
        n_train = n_train * (dataset.folds - 1) // dataset.folds
    spec = resolved_validation(spec, dataset).for_task(dataset.task.kind)
    table = dataset.schema is not None
    spec, chosen = apply_defaults(
        spec, dataset.task.kind, n_train, dataset.input_width, table=table
    )
    if notes is not None:
        notes.extend(chosen)
    if not table and (problem := table_only_problem(spec.space, dataset.name)):
        raise SpecError(problem)
    return spec.for_train_size(n_train)


def widest_input(spec: SweepSpec, dataset: Dataset) -> int:
    """The widest input the first hidden layer may see: a table's head with the space's
    embeddings at their largest (:func:`nnsweep.train.layers.head_width`)."""
    if dataset.schema is None:
        return dataset.input_width
    from nnsweep.train.layers import head_width

    space = spec.space
    dim = int(space.embedding_dim.largest())
    return max(
        head_width(dataset.schema, str(numeric), str(categorical), dim)
        for numeric in space.numeric_embedding.grid_values() or []
        for categorical in space.categorical_encoding.grid_values() or []
    )


def resolved_validation(spec: SweepSpec, dataset: Dataset) -> SweepSpec:
    """``spec`` with ``dataset.validation: auto`` replaced by what it chose for ``dataset``:
    ``{folds: K}`` or the holdout fraction. The study stores this spec and compares it on a
    resume, so a study's trials are all scored the same way."""
    from nnsweep.spec.dataset import AUTO, AUTO_HOLDOUT, Folds

    if spec.dataset.validation != AUTO:
        return spec
    chosen = Folds(folds=dataset.folds) if dataset.folds else AUTO_HOLDOUT
    section = spec.dataset.model_copy(update={"validation": chosen})
    return spec.model_copy(update={"dataset": section})


def check_study_name(name: str) -> None:
    """Hold a study name given apart from the sweep file (``--study``) to the sweep's rule.

    Raises:
        SpecError: letters, digits, '_', '-' or '.' only (it ends up in store queries).
    """
    from nnsweep.spec.config import check_name

    try:
        check_name(name)
    except ValueError as exc:
        raise SpecError(f"--study: {exc}") from None
