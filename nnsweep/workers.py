"""``nnsweep run --jobs N``: N worker processes on one machine, sharing one study.

Each worker is a plain ``nnsweep run`` process (TensorFlow wants processes, not threads);
they coordinate only through the Optuna storage, exactly as workers on many machines do, so
nothing here schedules trials. The storage must take concurrent writers: an RDB server
(PostgreSQL) or Optuna's JournalStorage file (``journal:///optuna.log``), not a SQLite file.
URLs reach the workers through the environment, never their command lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from .errors import StorageError
from .tracking import sqlite_path
from .urls import mask_url

WORKER_ENV = "NNSWEEP_WORKER"


def worker_index() -> int:
    """This process's index among ``--jobs`` workers (0 when run alone)."""
    try:
        return int(os.environ.get(WORKER_ENV, "0"))
    except ValueError:
        return 0


def check_concurrent_storage(storage_url: str, jobs: int) -> None:
    """Refuse a plain SQLite file for several writers, with the fix."""
    if jobs > 1 and sqlite_path(storage_url) is not None:
        raise StorageError(
            f"--jobs {jobs} needs a storage that takes concurrent writers, but "
            f"{mask_url(storage_url)} is a SQLite file; use --storage journal:///optuna.log "
            "(one machine) or postgresql+psycopg://user:pw@host/db (many)"
        )


def _pump(stream: object, prefix: str, out: Callable[[str], None]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        out(f"{prefix}{line.rstrip()}")


def run_workers(
    run_args: Sequence[str],
    *,
    jobs: int,
    storage_url: str,
    tracking_uri: str,
    echo: Callable[[str], None] = print,
) -> int:
    """Start ``jobs`` ``nnsweep run`` workers with ``run_args`` and wait for all of them.

    Returns the worst exit status (0 when every worker succeeded). Ctrl-C reaches the
    workers too (same process group); each closes its trial and run before it exits.
    """
    procs: list[subprocess.Popen[str]] = []
    pumps: list[threading.Thread] = []
    for i in range(jobs):
        env = {
            **os.environ,
            "NNSWEEP_STORAGE": storage_url,
            "MLFLOW_TRACKING_URI": tracking_uri,
            WORKER_ENV: str(i),
        }
        cmd = [sys.executable, "-m", "nnsweep", "run", *run_args, "--quiet", "--jobs", "1"]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        procs.append(proc)
        pump = threading.Thread(target=_pump, args=(proc.stdout, f"[worker {i}] ", echo))
        pump.start()
        pumps.append(pump)
    codes: list[int] = []
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        codes = [p.wait() for p in procs]
        raise
    finally:
        for pump in pumps:
            pump.join(timeout=5)
    return max(codes, default=0)
