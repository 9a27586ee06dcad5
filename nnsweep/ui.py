"""``nnsweep ui``: the MLflow UI on the project's tracking store.

Runs ``mlflow server`` (the same process ``mlflow ui`` starts) in a child process, prints the
URL of the runs table in the UI's "Model training" mode, and stops it cleanly on Ctrl-C.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import NnsweepError, StorageError
from .tracking import sqlite_path

PUBLIC_HOSTS = ("0.0.0.0", "::")


class PortBusyError(NnsweepError):
    """The port asked for is taken."""

    exit_code = 2


def check_port(host: str, port: int) -> None:
    """Raise :class:`PortBusyError` when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortBusyError(
                    f"port {port} on {host} is busy; pick another with --port"
                ) from None
            raise PortBusyError(f"cannot bind {host}:{port} ({exc.strerror}); fix --host") from None


def runs_url(base: str, experiment_id: str | None) -> str:
    """The URL of an experiment's runs table, in the UI's model-training mode."""
    if experiment_id is None:
        return base + "/"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def find_experiment(tracking_uri: str, name: str | None) -> str | None:
    """The id of experiment ``name``, or of the newest nnsweep experiment; None if none."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        return None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    if name is not None:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise StorageError(f"no experiment {name!r} in the tracking store; check --study")
        return str(exp.experiment_id)
    exps = [e for e in client.search_experiments() if e.name != "Default"]
    if not exps:
        return None
    return str(max(exps, key=lambda e: e.last_update_time or 0).experiment_id)


def server_command(tracking_uri: str, host: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    path = sqlite_path(tracking_uri)
    if path is not None:
        cmd += ["--default-artifact-root", (Path(path).resolve().parent / "mlruns").as_uri()]
    return cmd


def serve(
    tracking_uri: str, *, host: str, port: int, experiment: str | None,
    echo: Callable[[str], None] = print,
) -> int:
    """Serve the UI until Ctrl-C; returns the exit status."""
    check_port(host, port)
    if host in PUBLIC_HOSTS or not (host.startswith("127.") or host in ("localhost", "::1")):
        echo(f"warning: binding {host} makes the UI reachable from other machines; "
             "it has no login")
    exp_id = find_experiment(tracking_uri, experiment)
    shown = "127.0.0.1" if host in PUBLIC_HOSTS else host
    echo(f"MLflow UI: {runs_url(f'http://{shown}:{port}', exp_id)}")
    echo("press Ctrl-C to stop")
    proc = subprocess.Popen(server_command(tracking_uri, host, port))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        echo("MLflow UI stopped")
        return 0
