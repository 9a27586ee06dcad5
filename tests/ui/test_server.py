"""``nnsweep ui`` without MLflow's server: ports, addresses, the printed URL, Ctrl-C.

The server is a stand-in (a tiny HTTP server that answers ``/health``), so these run in
seconds; tests/test_browser.py drives the real MLflow UI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer

from nnsweep.errors import ExposureError
from nnsweep.ui import server as ui
from nnsweep.ui.exposure import Exposure, is_loopback
from tests._uiproc import free_port
from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]

FAKE_SERVER = textwrap.dedent(
    """
    import http.server, json, os, sys
    port, report = int(sys.argv[1]), sys.argv[2]
    with open(report, "w") as f:
        json.dump({
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "job_execution": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION"),
            "backend": os.environ.get("MLFLOW_BACKEND_STORE_URI"),
            "artifacts": os.environ.get("MLFLOW_DEFAULT_ARTIFACT_ROOT"),
        }, f)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    try:
        http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
    except KeyboardInterrupt:
        pass
    """
)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port someone listens on (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Serve a stand-in for ``mlflow server``; returns the file where it writes its pid."""
    report = tmp_path / "fake-server.txt"

    def command(host: str, port: int, exposure: object = None) -> list[str]:
        return [sys.executable, "-c", FAKE_SERVER, str(port), str(report)]

    monkeypatch.setattr(ui, "server_command", command)
    return report


def press_ctrl_c_when_ready(monkeypatch: pytest.MonkeyPatch, sig: int = signal.SIGINT) -> None:
    """Deliver ``sig`` to this process right after ``nnsweep ui`` says it is ready."""
    echo = typer.echo

    def echo_then_signal(message: object = None, *args: object, **kwargs: object) -> None:
        echo(message, *args, **kwargs)  # type: ignore[arg-type]
        if str(message).startswith("press Ctrl-C"):
            # Only while serve() has its own handler in place: never interrupt pytest itself.
            assert signal.getsignal(sig) not in (signal.default_int_handler, signal.SIG_DFL)
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(typer, "echo", echo_then_signal)


def test_busy_port_exits_2_naming_the_port_and_the_flag(
    cli: Cli, stores: Stores, busy_port: int
) -> None:
    result = cli("ui", "--port", busy_port, "--tracking-uri", stores.tracking_uri)
    assert result.code == 2
    assert result.err.splitlines() == [
        f"nnsweep: error: port {busy_port} on 127.0.0.1 is already in use; "
        "pick a free one with --port"
    ]
    assert "MLflow UI ready" not in result.out


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "my-laptop.example"])
def test_public_host_without_auth_or_insecure_is_refused(
    cli: Cli, stores: Stores, busy_port: int, host: str
) -> None:
    result = cli("ui", "--host", host, "--port", busy_port, "--tracking-uri", stores.tracking_uri)
    assert result.code == 2
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nnsweep: error: --host {host} makes the UI")
    assert "--auth" in lines[0] and "--insecure" in lines[0]
    assert "port" not in lines[0]  # refused before anything else is tried


def test_public_host_with_insecure_warns_before_anything_else(
    cli: Cli, stores: Stores, busy_port: int
) -> None:
    result = cli(
        "ui", "--host", "0.0.0.0", "--insecure", "--port", busy_port,
        "--tracking-uri", stores.tracking_uri,
    )  # fmt: skip
    lines = result.err.splitlines()
    assert lines[0].startswith("warning: binding 0.0.0.0 makes the UI reachable from other")
    assert "no login" in lines[0] and "--allowed-hosts" in lines[1]
    assert result.code == 2 and f"port {busy_port} on 0.0.0.0 is already in use" in lines[2]


def test_unbindable_address_exits_2_with_the_reason(cli: Cli, stores: Stores) -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine, so bind() fails at once.
    result = cli(
        "ui", "--host", "192.0.2.1", "--insecure", "--port", free_port(),
        "--tracking-uri", stores.tracking_uri,
    )  # fmt: skip
    assert result.code == 2
    assert "warning: binding 192.0.2.1" in result.err
    assert "nnsweep: error: cannot bind 192.0.2.1:" in result.err and "--host" in result.err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("my-laptop.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:5000"),
        ("0.0.0.0", "http://127.0.0.1:5000"),
        ("::", "http://[::1]:5000"),
        ("::1", "http://[::1]:5000"),
        ("localhost", "http://localhost:5000"),
    ],
)
def test_base_url_is_one_a_local_browser_can_open(host: str, url: str) -> None:
    assert ui.base_url(host, 5000) == url


def test_runs_url_opens_the_model_training_runs_table_sorted_best_first() -> None:
    assert ui.runs_url("http://127.0.0.1:5000/", "3") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
        "&orderByKey=metrics.%60val_accuracy%60&orderByAsc=false"
    )
    assert ui.runs_url("http://h:1", "3", "val_loss", ascending=True).endswith(
        "orderByKey=metrics.%60val_loss%60&orderByAsc=true"
    )
    assert ui.runs_url("http://h:1", None) == "http://h:1/#/experiments"


def test_server_gets_the_store_in_its_environment_not_its_command_line(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db?password=s3cret"
    cmd = ui.server_command("127.0.0.1", 5123)
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert cmd[cmd.index("--port") + 1] == "5123" and cmd[cmd.index("--workers") + 1] == "1"
    assert not any("sqlite" in arg or "s3cret" in arg for arg in ui.guarded(cmd))
    env = ui.server_env(uri, {"PATH": "/bin"})
    assert env["MLFLOW_BACKEND_STORE_URI"] == uri and env["PATH"] == "/bin"
    assert env["MLFLOW_DEFAULT_ARTIFACT_ROOT"] == (tmp_path / "mlruns").as_uri()
    assert "MLFLOW_DEFAULT_ARTIFACT_ROOT" not in ui.server_env("postgresql://u:p@h/db", {})


@pytest.mark.parametrize(
    ("exposure", "flags"),
    [
        (Exposure(), []),
        (Exposure(auth=True), ["--app-name", "basic-auth"]),
        (
            Exposure("0.0.0.0", "ui.example:5000,10.0.0.7", "https://nb.example", insecure=True),
            ["--allowed-hosts", "ui.example:5000,10.0.0.7",
             "--cors-allowed-origins", "https://nb.example"],
        ),
    ],
)  # fmt: skip
def test_exposure_options_reach_mlflow_server(exposure: Exposure, flags: list[str]) -> None:
    cmd = ui.server_command(exposure.host, 5000, exposure)
    assert cmd[cmd.index("--no-access-log") + 1 :] == flags
    # the options exist in the installed MLflow, spelt so
    from mlflow.cli import server

    known = {opt for param in server.params for opt in param.opts}
    assert set(flags[::2]) <= known


AUTH_ENV = {"MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32, "MLFLOW_AUTH_ADMIN_PASSWORD": "Adm1n-pw!"}


@pytest.mark.parametrize(
    ("drop", "first_start", "message"),
    [
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", False, "--auth needs MLFLOW_FLASK_SERVER_SECRET_KEY"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", True, "needs its password: export MLFLOW_AUTH_ADMIN"),
    ],
)
def test_auth_that_cannot_start_is_refused_with_the_fix(
    tmp_path: Path, drop: str, first_start: bool, message: str
) -> None:
    if not first_start:
        (tmp_path / "basic_auth.db").touch()
    env = {k: v for k, v in AUTH_ENV.items() if k != drop}
    with pytest.raises(ExposureError, match=message):
        Exposure("0.0.0.0", auth=True).check(env, cwd=tmp_path)
    assert Exposure("0.0.0.0", auth=True).check(AUTH_ENV, cwd=tmp_path)  # notes, no error
    (tmp_path / "basic_auth.db").touch()  # the admin exists: its password is not needed again
    Exposure(auth=True).check({k: v for k, v in AUTH_ENV.items() if "PASSWORD" not in k}, tmp_path)


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"]
)
def test_prints_the_runs_url_when_ready_and_stops_cleanly(
    cli: Cli,
    stores: Stores,
    fake_server: Path,
    monkeypatch: pytest.MonkeyPatch,
    sig: int,
) -> None:
    landing = ui.Landing("7", "tiny", metric="val_loss", ascending=True)
    monkeypatch.setattr(ui, "find_experiment", lambda uri, name: landing)
    press_ctrl_c_when_ready(monkeypatch, sig)
    port = free_port()
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    handlers = [signal.getsignal(s) for s in stops]

    result = cli("ui", "--port", port, "--tracking-uri", stores.tracking_uri)

    assert result.code == 0, result.err
    assert result.err == ""
    out = result.out.splitlines()
    assert "sweep 'tiny': its runs, lowest val_loss first" in out
    ready = next(line for line in out if line.startswith("MLflow UI ready in "))
    assert ready.endswith(
        f": http://127.0.0.1:{port}/#/experiments/7/runs?workflowType=machine_learning"
        "&orderByKey=metrics.%60val_loss%60&orderByAsc=true"
    )
    assert out[-2:] == ["press Ctrl-C to stop", "MLflow UI stopped"]
    server = json.loads(fake_server.read_text())
    assert server["job_execution"] == "false"  # MLflow's job runner stays off
    assert server["backend"] == stores.tracking_uri  # the store came through the environment
    assert server["artifacts"] == (stores.root / "mlruns").as_uri()
    assert server["ppid"] != os.getpid()  # started by the guard, not by nnsweep itself
    with pytest.raises(ProcessLookupError):
        os.kill(server["pid"], 0)  # the server is gone, and reaped
    ui.check_port("127.0.0.1", port)  # and its port is free again
    assert [signal.getsignal(s) for s in stops] == handlers


def test_empty_store_lands_on_the_experiment_list(
    cli: Cli, stores: Stores, fake_server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    press_ctrl_c_when_ready(monkeypatch)
    port = free_port()
    result = cli("ui", "--port", port, "--tracking-uri", stores.tracking_uri)
    assert result.code == 0, result.err
    assert "no sweep in this store yet; run one with `nnsweep run SWEEP`" in result.out
    assert f"http://127.0.0.1:{port}/#/experiments\n" in result.out


def test_server_that_dies_at_start_exits_1_with_its_status(
    cli: Cli, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        ui, "server_command", lambda *a: [sys.executable, "-c", "raise SystemExit(3)"]
    )
    result = cli("ui", "--port", free_port(), "--tracking-uri", stores.tracking_uri)
    assert result.code == 1
    assert "the MLflow server exited with status 3 before it answered" in result.err


def test_missing_store_folder_exits_2(cli: Cli, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/no/such/dir/mlflow.db"
    result = cli("ui", "--port", free_port(), "--tracking-uri", uri)
    assert result.code == 2 and "does not exist" in result.err


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with sweeps 'old' and 'new' (study 'new-b', minimizing val_loss)."""
    from nnsweep.track.tracker import Tracker

    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    old = Tracker(uri, "old")
    old.start_parent("old", tags={}, params={"objective": "best val_accuracy"})
    new = Tracker(uri, "new")
    new.start_parent(
        "new-b", tags={}, params={"objective": "last val_loss", "direction": "minimize"}
    )
    return uri


def test_find_experiment_picks_the_newest_sweep_and_its_objective(two_sweeps: str) -> None:
    landing = ui.find_experiment(two_sweeps, None)
    assert landing is not None
    assert (landing.name, landing.metric, landing.ascending) == ("new", "val_loss", True)


@pytest.mark.parametrize(("name", "found"), [("old", "old"), ("new-b", "new")])
def test_find_experiment_by_sweep_or_study_name(two_sweeps: str, name: str, found: str) -> None:
    landing = ui.find_experiment(two_sweeps, name)
    assert landing is not None and landing.name == found


def test_find_experiment_unknown_name_says_how_to_list_studies(two_sweeps: str) -> None:
    with pytest.raises(ui.StorageError, match="no experiment or study 'ghost'.*nnsweep status"):
        ui.find_experiment(two_sweeps, "ghost")
