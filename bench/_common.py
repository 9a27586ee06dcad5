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
    names = dists or ("nnsweep", "tensorflow", "tensorflow-cpu", "keras", "optuna", "mlflow")
    out = []
    for dist in names:
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(out)


def load() -> str:
    """The 1- and 5-minute load averages, as ``load 1.93/1.40`` (other users of the cores)."""
    if not hasattr(os, "getloadavg"):
        return "load n/a"
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def machine() -> str:
    from nnsweep.train.devices import available_cores

    return (
        f"{os.cpu_count()} CPU cores ({available_cores()} usable), {platform.machine()}, "
        f"Python {platform.python_version()}, {load()}"
    )


def stores(prefix: str, optuna_kind: str = "sqlite") -> tuple[Path, str, str]:
    """A fresh temp folder and its (Optuna storage, MLflow tracking) URLs.

    ``optuna_kind="journal"`` gives what ``nnsweep run`` uses with no flags, Optuna's journal
    file (``journal:///…/optuna.log``, opened by :func:`nnsweep.study.storage.open_storage`);
    ``"sqlite"`` a SQLite file any Optuna call opens. MLflow gets ``mlflow.db`` either way.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f"nnsweep-{prefix}-"))
    optuna_url = (
        f"journal:///{tmp}/optuna.log" if optuna_kind == "journal" else f"sqlite:///{tmp}/optuna.db"
    )
    return tmp, optuna_url, f"sqlite:///{tmp}/mlflow.db"
