"""nnsweep: hyperparameter sweeps for Keras MLPs, tracked in MLflow.

The public API mirrors the CLI: load a sweep file, run it, and read its best trial. Heavy
libraries (TensorFlow, MLflow, Optuna) are imported only when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
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
    from .config import SweepSpec, load_spec, parse_spec

__version__ = "0.1.0"
_FROM_CONFIG = ("SweepSpec", "load_spec", "parse_spec")


def __getattr__(name: str) -> Any:
    """``nnsweep.load_spec`` & co. import pydantic on first use (~0.3 s), not with the package:
    the commands that never read a sweep file (status, best, ui…) start faster."""
    if name in _FROM_CONFIG:
        from . import config

        return getattr(config, name)
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
    "SweepSpec",
    "__version__",
    "load_spec",
    "parse_spec",
]
