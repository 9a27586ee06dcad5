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


def preflight(
    spec: SweepSpec,
    *,
    storage_url: str,
    tracking_uri: str,
    study_name: str | None = None,
    jobs: int = 1,
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
    spec, dataset = prepare(spec)
    # the input width is known now (a table's only once loaded): refuse a space whose
    # largest model is over limits.max_params before any store is written
    spec.check_model_size(dataset.input_width, dataset.n_outputs)
    check_stores(storage_url, tracking_uri, jobs=jobs)
    return Prepared(spec, dataset, storage_url, tracking_uri, study_name or spec.name)


def prepare(spec: SweepSpec) -> tuple[SweepSpec, Dataset]:
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
    return fit_to_data(spec, dataset), dataset


def fit_to_data(spec: SweepSpec, dataset: Dataset) -> SweepSpec:
    """``spec`` with what depends on the loaded data filled in: the task's objective (checked)
    and, when the file names no batch size, the default one for the training split's size."""
    return spec.for_task(dataset.task.kind).for_train_size(dataset.sizes["train"])


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
