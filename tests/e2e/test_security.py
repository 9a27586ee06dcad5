"""Secrets and exposed UIs: no password in errors or on command lines, no orphan server, a login.

Registry models that carry code: test_untrusted_models.py; hostile input files and output
folders: test_hostile_files.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests._uiproc import UiProcess as BaseUiProcess
from tests._uiproc import free_port
from tests.conftest import CliResult, postgres_databases

Cli = Callable[..., CliResult]


# -- secrets in CLI errors --------------------------------------------------------------------
@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_store_secrets_never_reach_the_error_output(cli: Cli, debug: list[str]) -> None:
    """A storage URL whose password holds a space, '/' and '@' and a secret query parameter:
    the error (and the --debug traceback) names the store with both hidden."""
    url = "postgresql+psycopg://bob:S3cr et/pw@x@127.0.0.1:1/db?sslpassword=k3y pass&x=1"
    result = cli(*debug, "status", "--storage", url)
    assert result.code in (1, 2)
    assert "nnsweep: error:" in result.err and "postgresql+psycopg://bob:***@" in result.err
    for part in ("S3cr", "et/pw", "k3y", "pass&"):
        assert part not in result.err + result.out


# -- the UI: no secrets on command lines, no server outliving nnsweep ui ------------------------
PASSWORD = "Pr0c-list s3cret/@pw"  # '/', '@' and a space: the hostile kinds


@contextlib.contextmanager
def _store_with_password(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A tracking URI holding a password, and that password.

    PostgreSQL from NNSWEEP_TEST_POSTGRES_URL when set (as .ci/run sets it): a fresh database
    made with its credentials and dropped afterwards (MLflow's tables must never land in the
    shared one, where other tests keep Optuna's: both keep an ``alembic_version`` table);
    else a SQLite file whose URL carries a ``?password=`` query parameter (SQLite ignores it,
    the URL is no less secret)."""
    url = os.environ.get("NNSWEEP_TEST_POSTGRES_URL")
    if url:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
        if password:
            with postgres_databases(url) as make:
                yield make(), str(password)
            return
    quoted = urllib.parse.quote(PASSWORD, safe="")
    yield f"sqlite:///{tmp_path / 'mlflow.db'}?password={quoted}", PASSWORD


def _cmdlines() -> dict[int, list[str]]:
    """Every process's command line, as ``ps`` shows it to any local user."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
            if raw:
                found[int(entry.name)] = raw.decode(errors="replace").split("\0")
    return found


def _serving(port: int) -> dict[int, list[str]]:
    """Processes started with ``--port PORT``: the guard, mlflow server, uvicorn."""
    return {
        pid: args
        for pid, args in _cmdlines().items()
        if any(a == "--port" and b == str(port) for a, b in zip(args, args[1:], strict=False))
    }


class UiProcess(BaseUiProcess):
    """``python -m nnsweep ui --port PORT`` on ``uri`` passed in the environment, never as an
    argument (ps shows every argument); :meth:`close` also kills what serves its port."""

    def __init__(
        self,
        uri: str,
        cwd: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        super().__init__(
            ["--port", str(self.port), *args],
            cwd,
            env={**(env or {}), "MLFLOW_TRACKING_URI": uri},
            command=[sys.executable, "-m", "nnsweep"],
        )

    def wait_ready(self, timeout: float = 240.0) -> None:
        self.wait_for("MLflow UI ready", timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pid in _serving(self.port):  # a failed test must not leave servers behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ui_process(tmp_path: Path) -> Iterator[tuple[UiProcess, str]]:
    with _store_with_password(tmp_path) as (uri, password):
        ui = UiProcess(uri, tmp_path)
        try:
            yield ui, password
        finally:
            ui.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["sigkill", "sighup"])
def test_ui_server_keeps_the_password_off_command_lines_and_dies_with_nnsweep(
    ui_process: tuple[UiProcess, str], sig: int
) -> None:
    ui, password = ui_process
    ui.wait_ready()
    server = _serving(ui.port)
    assert any("mlflow" in args and "server" in args for args in server.values()), server
    assert any("uvicorn" in args for args in server.values()), server  # the worker too
    quoted = urllib.parse.quote(password, safe="")
    leaks = {
        pid: args
        for pid, args in _cmdlines().items()
        if password in " ".join(args) or quoted in " ".join(args)
    }
    assert not leaks
    assert password not in ui.output

    ui.proc.send_signal(sig)
    ui.proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while _serving(ui.port) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not _serving(ui.port), _serving(ui.port)
    with socket.socket() as sock:  # and nobody listens on the port any more
        assert sock.connect_ex(("127.0.0.1", ui.port)) != 0


ADMIN_PASSWORD = "Adm1n pass/word@ui"


def _http(url: str, *, auth: str | None = None, host: str | None = None, data: bytes = b"") -> int:
    """The status of a GET (or a POST with ``data``), with basic ``auth`` and a Host header."""
    import base64
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=data or None, method="POST" if data else "GET")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    if host:
        request.add_header("Host", host)
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_ui_with_auth_on_a_public_address_needs_a_login_and_the_allowed_host(
    tmp_path: Path,
) -> None:
    """`nnsweep ui --host 0.0.0.0 --auth --allowed-hosts …`: MLflow's basic-auth app answers
    only with the admin's password and only for the allowed Host (not for any private
    address, as MLflow's default would); the password never reaches a command line."""
    port = free_port()
    env = {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 40,
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    args = ("--host", "0.0.0.0", "--auth", "--allowed-hosts", f"127.0.0.1:{port}")
    ui = UiProcess(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, *args, env=env, port=port)
    try:
        ui.wait_ready()
        base = f"http://127.0.0.1:{port}"
        search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        create = f"{base}/api/2.0/mlflow/experiments/create"
        admin = f"admin:{ADMIN_PASSWORD}"
        assert _http(f"{base}/health") == 200
        assert _http(search) == 401
        assert _http(create, data=b'{"name": "intruder"}') == 401
        assert _http(search, auth="admin:wrong") == 401
        assert _http(search, auth=admin) == 200
        assert _http(search, auth=admin, host=f"192.168.1.5:{port}") == 403
        assert not any(ADMIN_PASSWORD in " ".join(a) for a in _cmdlines().values())
        assert "note: --auth sends passwords as HTTP basic auth" in ui.output
        assert (tmp_path / "basic_auth.db").is_file()  # MLflow's user store, in the cwd
    finally:
        ui.close()
