"""Shared helpers of the benchmark scripts: machine facts, versions, temporary stores."""

from __future__ import annotations

import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
VAL_FRACTION = 0.1
SEED = 42


def versions(*dists: str) -> str:
    names = dists or ("nnsweep", "tensorflow-cpu", "keras", "optuna", "mlflow")
    out = []
    for dist in names:
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(out)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}, "
        f"load {load:.2f}"
    )


def stores(prefix: str) -> tuple[Path, str, str]:
    """A fresh temp folder and its (Optuna storage, MLflow tracking) SQLite URLs."""
    tmp = Path(tempfile.mkdtemp(prefix=f"nnsweep-{prefix}-"))
    return tmp, f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"
