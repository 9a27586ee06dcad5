"""nnsweep: hyperparameter sweeps for Keras MLPs, tracked in MLflow.

The public API mirrors the CLI: load a sweep file, run it, and read its best trial. Heavy
libraries (TensorFlow, MLflow, Optuna) are imported only when a function needs them.
"""

from __future__ import annotations

from .config import SweepSpec, load_spec, parse_spec
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

__version__ = "0.1.0"

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
