"""nnsweep: hyperparameter sweeps for Keras MLPs, tracked in MLflow.

The public API mirrors the CLI: load a sweep file (:func:`load_spec`) or build a spec in code
(:func:`spec_from_dict`), run it (:func:`run_sweep`, as ``nnsweep run --jobs 1``) and read its
best trial (:func:`best_trial`, as ``nnsweep best --json``; with a second objective, by the
primary value, with the Pareto front beside it). Errors are the types below. Heavy
libraries (TensorFlow, MLflow, Optuna, pydantic) are imported only when a function needs them.

    from nnsweep import best_trial, run_sweep, spec_from_dict

    result = run_sweep(spec_from_dict({"name": "demo", "dataset": "mnist_5k", "trials": 3}))
    print(best_trial("demo"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnsweep.errors import (
    DataError,
    ExportError,
    NnsweepError,
    NoCompleteTrialError,
    SpecError,
    StorageError,
    StudyNotFoundError,
    SweepFailedError,
)

if TYPE_CHECKING:
    from nnsweep.api import best_trial, run_sweep, spec_from_dict
    from nnsweep.spec.config import SweepSpec, load_spec, parse_spec
    from nnsweep.sweep.run import SweepResult

from nnsweep.version import __version__

# name → module that defines it, imported on first use
_LAZY = {
    "SweepSpec": "spec.config",
    "load_spec": "spec.config",
    "parse_spec": "spec.config",
    "spec_from_dict": "api",
    "run_sweep": "api",
    "best_trial": "api",
    "SweepResult": "sweep.run",
}


def __getattr__(name: str) -> Any:
    """``nnsweep.load_spec`` & co. import pydantic on first use (~0.3 s), not with the package:
    the commands that never read a sweep file (status, best, ui…) start faster."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'nnsweep' has no attribute {name!r}")


__all__ = [
    "DataError",
    "ExportError",
    "NnsweepError",
    "NoCompleteTrialError",
    "SpecError",
    "StorageError",
    "StudyNotFoundError",
    "SweepFailedError",
    "SweepResult",
    "SweepSpec",
    "__version__",
    "best_trial",
    "load_spec",
    "parse_spec",
    "run_sweep",
    "spec_from_dict",
]
