"""``nnsweep ui`` without MLflow's server: ports, addresses, the printed URL, Ctrl-C.

The server is a stand-in (a tiny HTTP server that answers ``/health``), so these run in
seconds; tests/test_browser.py drives the real MLflow UI.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer

from nnsweep import ui
from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]

FAKE_SERVER = textwrap.dedent(
    """
    import http.server, os, sys
    port, report = int(sys.argv[1]), sys.argv[2]
    with open(report, "w") as f:
        f.write(f"{os.getpid()} {os.environ.get('MLFLOW_SERVER_ENABLE_JOB_EXECUTION')}")

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

    def command(tracking_uri: str, host: str, port: int) -> list[str]:
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


def test_public_host_warns_before_anything_else(cli: Cli, stores: Stores, busy_port: int) -> None:
    result = cli(
        "ui", "--host", "0.0.0.0", "--port", busy_port, "--tracking-uri", stores.tracking_uri
    )
    lines = result.err.splitlines()
    assert lines[0].startswith("warning: binding 0.0.0.0 makes the UI reachable from other")
    assert "no login" in lines[0]
    assert result.code == 2 and f"port {busy_port} on 0.0.0.0 is already in use" in lines[1]


def test_unbindable_address_exits_2_with_the_reason(cli: Cli, stores: Stores) -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine, so bind() fails at once.
    result = cli(
        "ui", "--host", "192.0.2.1", "--port", free_port(), "--tracking-uri", stores.tracking_uri
    )
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
    assert ui.is_loopback(host) is loopback


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


def test_server_command_serves_the_artifacts_beside_the_database(tmp_path: Path) -> None:
    cmd = ui.server_command(f"sqlite:///{tmp_path}/mlflow.db", "127.0.0.1", 5123)
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert cmd[cmd.index("--default-artifact-root") + 1] == (tmp_path / "mlruns").as_uri()
    assert cmd[cmd.index("--port") + 1] == "5123" and cmd[cmd.index("--workers") + 1] == "1"
    assert "--default-artifact-root" not in ui.server_command("postgresql://h/db", "::1", 1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
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
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

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
    pid, job_execution = fake_server.read_text().split()
    assert job_execution == "false"  # MLflow's job runner stays off
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)  # the server is gone, and reaped
    ui.check_port("127.0.0.1", port)  # and its port is free again
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


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
    from nnsweep.tracking import Tracker

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
