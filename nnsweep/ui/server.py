"""``nnsweep ui``: the MLflow UI on the project's tracking store.

Runs ``mlflow server`` (what ``mlflow ui`` runs) in a child process, waits until it answers,
prints the URL of the sweep's runs table and stops the server cleanly on Ctrl-C or SIGTERM.

MLflow 3 opens an experiment page in its GenAI mode (traces, an empty overview); the runs table
lives in the "Model training" mode. :mod:`nnsweep.track.tracker` tags every experiment
``mlflow.experimentKind=custom_model_development``, MLflow's mark of a model-training
experiment, but the 3.17 UI takes its mode from the URL or from the browser's last choice in
its sidebar, so the printed URL asks for it with ``workflowType=machine_learning``. The URL
also sorts the runs by the value each trial was scored with (``objective_<metric>``, e.g.
``objective_val_mae``: the objective metric at the best or last epoch, as the sweep reduces
it), best first in the objective's direction.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnsweep._proc import interrupt_on_signals
from nnsweep.errors import PortBusyError, ServerError, StorageError
from nnsweep.names import ROLE_TAG, STUDY_TAG
from nnsweep.stores import artifact_root, check_tracking_uri, sqlite_path, startup_lock
from nnsweep.tasks import MAXIMIZE, MINIMIZE, OBJECTIVE_DIRECTIONS, objective_key
from nnsweep.track.tracker import (
    DIRECTION_PARAM,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    OBJECTIVE_METRIC_PARAM,
    open_store,
)
from nnsweep.ui.exposure import LOOPBACK, Exposure
from nnsweep.urls import mask_url

DEFAULT_PORT = 5000
SORT_METRIC = "val_accuracy"
STARTUP_TIMEOUT = 180.0  # seconds; `mlflow server` takes ~15 s to answer on 2 busy cores
STOP_TIMEOUT = 15.0
GUARD = Path(__file__).with_name("_guard.py")  # run as a script: see nnsweep/_guard.py
GUARD_GRACE = 10.0  # seconds the server gets to stop before its process group is killed

# The server's background job runner (GenAI judges, trace rollups) starts seven more processes
# that nnsweep never uses and that outlive the server when it is killed; keep it off unless
# the user turns it on.
SERVER_ENV_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port(host: str, port: int) -> None:
    """Raise :class:`PortBusyError` when ``host:port`` cannot be bound.

    ``SO_REUSEADDR`` is set as uvicorn sets it, so a port left in TIME_WAIT by a server that
    just stopped counts as free, and only a port someone listens on counts as busy.
    """
    bind_host = host.strip("[]")
    with socket.socket(_family(bind_host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortBusyError(
                    f"port {port} on {host} is already in use; pick a free one with --port"
                ) from None
            raise PortBusyError(
                f"cannot bind {host}:{port} ({exc.strerror}); fix --host or --port"
            ) from None


def base_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens for a server bound to ``host:port``."""
    bare = host.strip("[]")
    if bare in ("0.0.0.0", ""):
        bare = LOOPBACK
    elif bare == "::":
        bare = "::1"
    shown = f"[{bare}]" if ":" in bare else bare
    return f"http://{shown}:{port}"


def runs_url(
    base: str,
    experiment_id: str | None,
    sort_metric: str | None = SORT_METRIC,
    ascending: bool = False,
) -> str:
    """The URL of an experiment's runs table in the UI's "Model training" mode.

    Sorted by ``sort_metric`` (best first for a metric that is maximized: ``ascending``
    False), when given. Without an experiment: the UI's list of experiments.
    """
    base = base.rstrip("/")
    if experiment_id is None:
        return base + "/#/experiments"
    query = {"workflowType": "machine_learning"}
    if sort_metric:
        query |= {"orderByKey": f"metrics.`{sort_metric}`", "orderByAsc": str(ascending).lower()}
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return f"{base}/#/experiments/{experiment_id}/runs?{encoded}"


@dataclass(frozen=True)
class Landing:
    """Where the printed URL lands: an experiment's runs table, sorted by its objective."""

    experiment_id: str
    name: str
    metric: str = SORT_METRIC
    ascending: bool = False

    def url(self, base: str) -> str:
        return runs_url(base, self.experiment_id, self.metric, self.ascending)


def find_experiment(tracking_uri: str, name: str | None) -> Landing | None:
    """The experiment to open; None when the store holds no sweep yet.

    ``name`` is a sweep (experiment) name or a study name given with ``run --study``; without
    it, the experiment a sweep wrote to last. The sort follows the objective recorded on the
    newest parent run (params ``objective_metric`` and ``direction``; ``val_accuracy`` when
    there is none): by the trials' objective values (:func:`sort_key`), best first.

    Raises:
        StorageError: ``name`` matches no experiment and no study.
    """
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        if name is not None:
            raise StorageError(
                f"no experiment {name!r}: {path} does not exist yet; check --tracking-uri"
            )
        return None
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri)
    active = client.search_experiments(ViewType.ACTIVE_ONLY)
    exp: Any = None
    if name is not None:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            escaped = name.replace("'", "\\'")
            ids = [e.experiment_id for e in active]
            runs = client.search_runs(ids, f"tags.`{STUDY_TAG}` = '{escaped}'", max_results=1)
            if not runs:
                raise StorageError(
                    f"no experiment or study {name!r} in "
                    f"{mask_url(tracking_uri)}; check --study (`nnsweep status` "
                    "lists the studies)"
                )
            exp = client.get_experiment(runs[0].info.experiment_id)
    else:
        exps = [e for e in active if e.name != "Default"]
        ours = [e for e in exps if e.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND] or exps
        if not ours:
            return None
        exp = max(ours, key=lambda e: e.last_update_time or 0)
    parents = client.search_runs(
        [exp.experiment_id],
        f"tags.`{ROLE_TAG}` = 'study'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    params = parents[0].data.params if parents else {}
    # runs logged before nnsweep 0.2 carry the objective as one param, "best val_accuracy"
    legacy = params.get("objective", "").rpartition(" ")[2]
    metric = params.get(OBJECTIVE_METRIC_PARAM) or legacy or SORT_METRIC
    direction = params.get(DIRECTION_PARAM) or OBJECTIVE_DIRECTIONS.get(metric, MAXIMIZE)
    return Landing(
        str(exp.experiment_id),
        str(exp.name),
        sort_key(client, str(exp.experiment_id), metric),
        ascending=direction == MINIMIZE,
    )


def sort_key(client: Any, experiment_id: str, metric: str) -> str:
    """The run metric the runs table is sorted by for objective ``metric``: the value each
    trial was scored with (``objective_<metric>``, the best or last epoch as the objective
    reduces), or, in a store whose runs predate it, ``metric`` itself (its last epoch)."""
    from mlflow.exceptions import MlflowException

    key = objective_key(metric)
    try:
        scored = client.search_runs([experiment_id], f"metrics.`{key}` IS NOT NULL", max_results=1)
    except MlflowException:  # a store that cannot filter on presence: look at a page of runs
        scored = [r for r in client.search_runs([experiment_id]) if key in r.data.metrics]
    return key if scored else metric


def server_runs_url(tracking_uri: str, experiment: str | None) -> str | None:
    """The runs-table URL on a tracking URI that is an MLflow server (``http(s)://``), sorted
    as :func:`find_experiment` says; None for a local store, whose UI ``nnsweep ui`` starts.

    Raises:
        StorageError: ``experiment`` is not on the server.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    found = find_experiment(tracking_uri, experiment)
    server = tracking_uri.split("?")[0]
    return found.url(server) if found else runs_url(server, None)


def server_command(host: str, port: int, exposure: Exposure | None = None) -> list[str]:
    """The ``mlflow server`` command line: one worker, no access log, and the exposure's
    options. No store URI: it may hold a password, and a command line is visible to every
    local user (``ps``); :func:`server_env` hands it over."""
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host.strip("[]"),
        "--port",
        str(port),
        "--workers",
        "1",
        "--uvicorn-opts",
        "--no-access-log",
    ]
    return cmd + (exposure.server_flags() if exposure else [])


def server_env(tracking_uri: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ``environ`` plus the store, in the variables that
    ``mlflow server`` reads for ``--backend-store-uri`` and ``--default-artifact-root``."""
    env = {**SERVER_ENV_DEFAULTS, **(os.environ if environ is None else environ)}
    env["MLFLOW_BACKEND_STORE_URI"] = tracking_uri
    root = artifact_root(tracking_uri)
    if root is not None:  # where nnsweep puts each experiment's artifacts
        env["MLFLOW_DEFAULT_ARTIFACT_ROOT"] = root.as_uri()
    return env


def guarded(command: list[str]) -> list[str]:
    """``command`` run by the guard that takes it and its workers down with this process."""
    return [sys.executable, str(GUARD), str(os.getpid()), str(GUARD_GRACE), "--", *command]


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_up(
    proc: subprocess.Popen[Any], url: str, timeout: float, what: str = "the MLflow server"
) -> None:
    """Poll ``url`` until it answers 200 (``what``: the server, as messages name it).

    Raises:
        ServerError: the server process exited first, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while not _answers(url):
        code = proc.poll()
        if code is not None:
            raise ServerError(
                f"{what} exited with status {code} before it answered; its messages are above"
            )
        if time.monotonic() > deadline:
            raise ServerError(f"{what} did not answer {url} within {timeout:.0f} s")
        time.sleep(0.25)


def stop_server(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> int:
    """Stop the server and every process it started; returns its exit status.

    ``proc`` is the guard (:mod:`nnsweep.ui._guard`) in its own process group: it gets one
    SIGINT, passes it to the server (which forwards it to uvicorn, a graceful stop) and kills
    the server's process group after ``GUARD_GRACE`` seconds; whatever is left of the guard's
    group after ``timeout`` seconds is killed.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            pass  # a second Ctrl-C means: stop waiting
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers, e.g. a worker stuck on a request
    return proc.wait()


def supervise(
    proc: subprocess.Popen[Any],
    ready: Callable[[], str],
    what: str,
    started: float,
    echo: Callable[[str], None],
) -> int | None:
    """Wait for ``ready()`` (the URL to open, once the server answers), say it, and wait for
    the server to end: ``None`` after Ctrl-C/SIGTERM/SIGHUP (stopped here), else the status
    it exited with by itself. Any error stops it before it is raised."""
    try:
        url = ready()
        echo(f"{what} ready in {time.monotonic() - started:.0f} s: {url}")
        echo("press Ctrl-C to stop")
        return proc.wait()
    except KeyboardInterrupt:
        stop_server(proc)
        echo(f"{what} stopped")
        return None
    except BaseException:
        stop_server(proc)
        raise


def _landing(found: Landing | None, base: str, echo: Callable[[str], None]) -> str:
    """The URL the UI opens on (the sweep's runs, best first), said in one line."""
    if found is None:
        echo("no sweep in this store yet; run one with `nnsweep run SWEEP`")
        return runs_url(base, None)
    order = "lowest" if found.ascending else "highest"
    echo(f"sweep {found.name!r}: its runs, {order} {found.metric} first")
    return found.url(base)


def serve(
    tracking_uri: str,
    *,
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
    experiment: str | None = None,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    allowed_hosts: str | None = None,
    cors_allowed_origins: str | None = None,
    auth: bool = False,
    insecure: bool = False,
) -> int:
    """Serve the MLflow UI on ``tracking_uri`` until Ctrl-C, SIGTERM or SIGHUP; returns the
    exit status. The server (and its workers) also stops when this process is killed.

    Args:
        tracking_uri: the MLflow store to show. An ``http(s)://`` URI is already an MLflow
            server: its runs-table URL is printed and nothing is started.
        host, port: where to listen. Anything but a loopback address needs ``auth`` or
            ``insecure`` (see :mod:`nnsweep.ui.exposure`).
        experiment: sweep, experiment or study name to open [default: the newest sweep].
        echo, warn: where the URL and the progress lines, and the warnings, go.
        startup_timeout: seconds to wait for the server's first answer.
        allowed_hosts, cors_allowed_origins: MLflow's options of those names, passed on.
        auth: serve MLflow's basic-auth app. insecure: allow a public ``host`` without it.

    Raises:
        ExposureError: a public ``host`` without ``auth`` or ``insecure``; ``auth`` not set up.
        PortBusyError: the port is taken or the address cannot be bound.
        StorageError: the store cannot be reached, or ``experiment`` is not in it.
        ServerError: the server exited early or never answered.
    """
    warn = warn or echo
    check_tracking_uri(tracking_uri)
    url = server_runs_url(tracking_uri, experiment)
    if url is not None:
        echo(f"{mask_url(tracking_uri)} is an MLflow server already; its UI: {mask_url(url)}")
        return 0
    exposure = Exposure(host, allowed_hosts, cors_allowed_origins, auth=auth, insecure=insecure)
    for line in exposure.check():
        warn(line)
    check_port(host, port)
    base = base_url(host, port)
    echo(f"starting the MLflow UI on {mask_url(tracking_uri)} …")
    # MLflow's tables first, here: on a new store the server would create them while this
    # process reads the store (find_experiment below), and one of the two would lose the race
    with startup_lock(tracking_uri):
        open_store(tracking_uri)
    with interrupt_on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
        started = time.monotonic()
        proc = subprocess.Popen(
            guarded(server_command(host, port, exposure)),
            env=server_env(tracking_uri),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches nnsweep only, which stops the server
        )

        def ready() -> str:
            found = find_experiment(tracking_uri, experiment)  # while the server boots
            try:
                wait_until_up(proc, base + "/health", startup_timeout)
            except ServerError:
                if proc.poll() is not None:
                    check_port(host, port)  # lost a race for the port: say so plainly
                raise
            return _landing(found, base, echo)

        code = supervise(proc, ready, "MLflow UI", started, echo)
        if code is None:
            return 0
    stop_server(proc)
    raise ServerError(
        f"the MLflow server stopped by itself with status {code}; its messages are above"
    )
