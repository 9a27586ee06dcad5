"""``nnsweep dashboard``: Optuna's own dashboard (optuna-dashboard) on the project's study storage.

Beside MLflow's UI (:mod:`nnsweep.ui.server`), which shows runs, curves and models,
optuna-dashboard shows the studies as Optuna holds them: the optimization history, parameter
importances, slices, contour and parallel-coordinate plots, each trial's params and user
attributes. It reads the same storage ``nnsweep run`` writes: a journal file, SQLite or
PostgreSQL.

It runs in a child process (:mod:`nnsweep.ui._dashboard_app`) under the same guard as the
MLflow UI (:mod:`nnsweep.ui._guard`), so it dies with ``nnsweep``; the storage URL reaches it
through its environment, never its command line. optuna-dashboard has no login, and its API
writes (notes, trial states, study deletion), so it binds 127.0.0.1 unless ``--insecure`` says
otherwise on purpose.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

from nnsweep._proc import interrupt_on_signals
from nnsweep.errors import ExposureError, ServerError, StorageError
from nnsweep.names import DASHBOARD_STORAGE_ENV
from nnsweep.ui.exposure import LOOPBACK, is_loopback
from nnsweep.ui.server import base_url, check_port, guarded, stop_server, supervise, wait_until_up
from nnsweep.urls import mask_url

DEFAULT_PORT = 8080
STARTUP_TIMEOUT = 60.0  # seconds; it answers in about 2 s


def check_exposure(host: str, insecure: bool) -> list[str]:
    """Refuse a non-loopback ``host`` without ``insecure``; the warnings to print.

    Raises:
        ExposureError: with the rule and the fix.
    """
    if is_loopback(host):
        return []
    if not insecure:
        raise ExposureError(
            f"--host {host} makes Optuna's dashboard reachable from other machines, and it has "
            "no login: anyone who reaches it can delete studies and change trials; keep "
            "--host 127.0.0.1 (reach it through an SSH tunnel), or add --insecure if only "
            "trusted machines can reach it"
        )
    return [f"warning: binding {host} makes the dashboard reachable from other machines, and "
            "it has no login (--insecure)"]  # fmt: skip


def dashboard_command(host: str, port: int) -> list[str]:
    """The child's command line: host and port only (the storage goes by environment)."""
    from nnsweep.ui import _dashboard_app  # light: optuna-dashboard is imported in the child

    return [sys.executable, "-m", _dashboard_app.__name__, host.strip("[]"), str(port)]


def study_url(base: str, storage_url: str, study: str | None) -> str:
    """The dashboard's page of ``study`` (its list of studies without one)."""
    if study is None:
        return base + "/dashboard"
    from nnsweep.study.storage import open_storage

    study_id = open_storage(storage_url).get_study_id_from_name(study)
    return f"{base}/dashboard/studies/{study_id}"


def serve_dashboard(
    storage_url: str,
    *,
    study: str | None = None,
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
    insecure: bool = False,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> int:
    """Serve optuna-dashboard on ``storage_url`` until Ctrl-C, SIGTERM or SIGHUP; print the
    URL of ``study``'s page (the list of studies without one). Returns the exit status.

    Raises:
        ExposureError: a non-loopback ``host`` without ``insecure``.
        PortBusyError: the port is taken.
        StudyNotFoundError, StorageError: the storage or the study cannot be read.
        ServerError: the dashboard exited early or never answered.
    """
    import importlib.util
    import os

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise ServerError("nnsweep dashboard needs optuna-dashboard: pip install optuna-dashboard")
    for line in check_exposure(host, insecure):
        (warn or echo)(line)
    from nnsweep.study.storage import list_studies

    names = list_studies(storage_url)  # the storage is readable (and a study named is there)
    if study is not None and study not in names:
        have = ", ".join(names) or "none yet; run `nnsweep run SWEEP` first"
        raise StorageError(f"no study {study!r} in {mask_url(storage_url)} (studies: {have})")
    check_port(host, port)
    base = base_url(host, port)
    echo(f"starting Optuna's dashboard on {mask_url(storage_url)} …")
    env = {**os.environ, DASHBOARD_STORAGE_ENV: storage_url}
    with interrupt_on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
        started = time.monotonic()
        proc = subprocess.Popen(
            guarded(dashboard_command(host, port)),
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches nnsweep only, which stops the child
        )

        def ready() -> str:
            wait_until_up(proc, base + "/api/studies", startup_timeout, "optuna-dashboard")
            return study_url(base, storage_url, study)

        code = supervise(proc, ready, "Optuna dashboard", started, echo)
        if code is None:
            return 0
    stop_server(proc)
    raise ServerError(f"optuna-dashboard stopped by itself with status {code}")
