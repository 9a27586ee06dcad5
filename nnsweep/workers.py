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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .stores import STORAGE_ENV, TRACKING_ENV, startup_lock

if TYPE_CHECKING:
    from .config import SweepSpec


@dataclass
class JobsResult:
    """What ``run --jobs N`` did: the study, its trial counts by state, the workers' status."""

    study_name: str
    jobs: int
    code: int
    states: dict[str, int] = field(default_factory=dict)


def worker_args(sweep: Path, overrides: Mapping[str, Any]) -> list[str]:
    """A worker's ``nnsweep run`` arguments: the sweep file and the flags given (None: unset)."""
    args = [str(sweep)]
    for key, value in overrides.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def run_jobs(
    sweep: Path,
    spec: SweepSpec,
    *,
    jobs: int,
    storage_url: str,
    tracking_uri: str,
    study_name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> JobsResult:
    """``nnsweep run --jobs N``: check once, create the shared records, run N workers.

    The pre-flight is :func:`nnsweep.sweep.preflight`, as for a single process, so bad input is
    refused before anything is written. The study and the MLflow experiment are then created
    here, once, before the workers start, so they do not race to create them.

    Args:
        sweep: the sweep file the workers read.
        spec: the validated sweep, overrides applied.
        overrides: the ``run`` flags to hand on (``trials``, ``seed``, …; None: not given).
        echo: where the workers' output lines go, each prefixed with ``[worker i]``.

    Raises:
        DataError, StorageError: bad input, before anything is written.
    """
    from .study import create_or_resume, load_study, summarize
    from .sweep import preflight
    from .tracking import ensure_experiment

    name = study_name or spec.name
    dataset = preflight(
        spec, storage_url=storage_url, tracking_uri=tracking_uri, study_name=study_name, jobs=jobs
    )
    with startup_lock(storage_url, tracking_uri):
        create_or_resume(spec, storage_url, name, dataset=dataset)
        ensure_experiment(tracking_uri, spec.name)
    code = run_workers(
        worker_args(sweep, {**(overrides or {}), "study": study_name}),
        jobs=jobs,
        storage_url=storage_url,
        tracking_uri=tracking_uri,
        echo=echo,
    )
    summary = summarize(load_study(name, storage_url))
    return JobsResult(name, jobs, code, {s: n for s, n in summary["states"].items() if n})


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
            STORAGE_ENV: storage_url,
            TRACKING_ENV: tracking_uri,
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
