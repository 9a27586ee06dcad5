"""Hostile inputs and events: registry models that carry code, secrets, exposed UIs, bombs.

Each class is one parametrized table where it can be; every hostile case also proves that it
is hostile (the code it carries does run when loaded the unsafe way), so a refusal is not
an accident of a broken fixture.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CliResult, Stores, postgres_databases

Cli = Callable[..., CliResult]


# -- registry models never run their own code ----------------------------------------------------
def _marker_model(marker: Path) -> Any:
    """A pyfunc PythonModel whose loader writes ``marker``: code shipped with a model."""
    import mlflow.pyfunc

    class WritesMarker(mlflow.pyfunc.PythonModel):
        def __init__(self, path: str) -> None:
            self.path = path

        def load_context(self, context: Any) -> None:
            Path(self.path).write_text("code from the model ran", encoding="utf-8")

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    return WritesMarker(str(marker))


@pytest.fixture
def registered_pyfunc(stores: Stores, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``models:/evil@champion``: a pyfunc model registered in the test store; its marker."""
    import mlflow
    from mlflow import MlflowClient

    marker = tmp_path / "marker.txt"
    mlflow.set_tracking_uri(stores.tracking_uri)
    mlflow.set_registry_uri(stores.tracking_uri)
    try:
        info = mlflow.pyfunc.log_model(
            name="evil", python_model=_marker_model(marker), pip_requirements=[]
        )
        version = mlflow.register_model(info.model_uri, "evil")
        client = MlflowClient(stores.tracking_uri, registry_uri=stores.tracking_uri)
        client.set_registered_model_alias("evil", "champion", version.version)
    finally:
        mlflow.set_registry_uri(None)
        mlflow.set_tracking_uri(None)
    assert not marker.exists()
    yield "models:/evil@champion", marker


def test_registered_pyfunc_model_is_refused_and_its_code_never_runs(
    cli: Cli, stores: Stores, registered_pyfunc: tuple[str, Path], tmp_path: Path
) -> None:
    uri, marker = registered_pyfunc
    digits = tmp_path / "x.npy"
    np.save(digits, np.zeros((2, 28, 28), dtype=np.uint8))

    result = cli("predict", uri, digits, "--tracking-uri", stores.tracking_uri)

    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "python_function" in lines[0] and uri in lines[0], result.err
    assert not marker.exists()
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in os.environ  # restored after the load

    # The fixture is hostile indeed: MLflow's own loader runs the model's code.
    import mlflow.pyfunc

    from nnsweep.modeluri import download_model

    local = download_model(uri, tmp_path / "copy", stores.tracking_uri)
    mlflow.pyfunc.load_model(str(local))
    assert marker.read_text(encoding="utf-8") == "code from the model ran"


def _save_keras_flavour(folder: Path, model: Any = None) -> Path:
    """A model folder as ``mlflow.keras.save_model`` writes it (what nnsweep logs)."""
    import keras
    import mlflow.keras

    if model is None:
        model = keras.Sequential(
            [keras.Input((784,)), keras.layers.Dense(10, activation="softmax")]
        )
    mlflow.keras.save_model(model, str(folder), pip_requirements=[])
    return folder


def _edit_mlmodel(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    import yaml

    meta = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    edit(meta["flavors"])
    (folder / "MLmodel").write_text(yaml.safe_dump(meta), encoding="utf-8")


def _lambda_keras(marker: Path) -> Any:
    """A Keras model whose Lambda layer would write ``marker`` when deserialised unsafely."""
    import keras

    path = str(marker)
    code = f"lambda x: (open({path!r}, 'w').write('lambda ran'), x)[1]"  # runs at load time
    inputs = keras.Input((784,))
    hidden = keras.layers.Lambda(eval(code))(inputs)  # noqa: S307 - the hostile payload
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


HOSTILE_MODELS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "only python_function": (lambda f: f.pop("keras"), "not the keras flavour"),
    "keras plus sklearn": (
        lambda f: f.update(sklearn={"pickled_model": "model.pkl"}),
        "sklearn is not the keras flavour",
    ),
    "custom loader_module": (
        lambda f: f["python_function"].update(loader_module="evil_loader", code="code"),
        "carries its own loader or code",
    ),
    "exported SavedModel": (
        lambda f: f["keras"].update(save_exported_model=True),
        "no native .keras file",
    ),
    "no flavours": (lambda f: f.clear(), "not the keras flavour"),
}


@pytest.mark.parametrize("case", list(HOSTILE_MODELS))
def test_only_the_keras_flavour_nnsweep_logs_is_accepted(tmp_path: Path, case: str) -> None:
    from nnsweep.errors import ExportError
    from nnsweep.predictor import logged_keras_file

    folder = _save_keras_flavour(tmp_path / "model")
    assert logged_keras_file(folder, "models:/m") == folder / "data" / "model.keras"
    edit, reason = HOSTILE_MODELS[case]
    _edit_mlmodel(folder, edit)
    with pytest.raises(ExportError, match="models:/m: flavour") as err:
        logged_keras_file(folder, "models:/m")
    assert reason in str(err.value)


def test_keras_file_escaping_the_model_folder_is_refused(tmp_path: Path) -> None:
    from nnsweep.errors import ExportError
    from nnsweep.predictor import logged_keras_file

    folder = _save_keras_flavour(tmp_path / "model")
    outside = tmp_path / "outside.keras"
    (folder / "data" / "model.keras").replace(outside)
    (folder / "data" / "model.keras").symlink_to(outside)
    with pytest.raises(ExportError, match="no data/model.keras file"):
        logged_keras_file(folder, "models:/m")


def test_keras_lambda_code_does_not_run(tmp_path: Path) -> None:
    """A keras-flavoured model whose .keras file holds a Lambda is refused by safe mode."""
    import keras

    from nnsweep.errors import ExportError
    from nnsweep.predictor import _keras_predictor, logged_keras_file

    marker = tmp_path / "lambda.txt"
    folder = _save_keras_flavour(tmp_path / "model", _lambda_keras(marker))
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    path = logged_keras_file(folder, "models:/m")
    with pytest.raises(ExportError, match="Keras cannot load it"):
        _keras_predictor(path, "models:/m")
    assert not marker.exists()
    keras.saving.load_model(path, safe_mode=False)  # hostile indeed: unsafe mode runs it
    assert marker.exists()


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class UiProcess:
    """``nnsweep ui`` in a subprocess, its output collected by a thread."""

    def __init__(
        self,
        uri: str,
        cwd: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or _free_port()
        # the URI in the environment, not --tracking-uri: ps shows every argument
        env = {**os.environ, **(env or {}), "MLFLOW_TRACKING_URI": uri}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nnsweep", "ui", "--port", str(self.port), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while not any("MLflow UI ready" in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            assert time.monotonic() < deadline, "".join(self.lines)[-3000:]
            time.sleep(0.5)

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
    assert password not in "".join(ui.lines)

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
    port = _free_port()
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
        assert "note: --auth sends passwords as HTTP basic auth" in "".join(ui.lines)
        assert (tmp_path / "basic_auth.db").is_file()  # MLflow's user store, in the cwd
    finally:
        ui.close()


# -- predict inputs are bounded ------------------------------------------------------------------
def _npy_header(fh: Any, shape: tuple[int, ...], descr: str) -> None:
    np.lib.format.write_array_header_1_0(
        fh, {"descr": descr, "fortran_order": False, "shape": shape}
    )


def _zero_bomb(path: Path, images: int) -> None:
    """An .npz whose x.npy is ``images`` blank digits: ~1000:1 deflate, written in chunks."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            _npy_header(member, (images, 28, 28), "|u1")
            chunk = bytes(784 * 1000)
            for _ in range(images // 1000):
                member.write(chunk)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims ``width`` x ``height`` gray pixels (its data is one short row)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


class _WritesMarker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))  # unpickling creates the file


def _hostile_input(case: str, tmp: Path) -> tuple[Path, str]:
    """Case name → (the input file, what the one-line error must say)."""
    path = tmp / {"png": "x.png", "npz": "x.npz"}.get(case.split()[0], "x.npy")
    if case == "npy header claims 10**10 values":
        with path.open("wb") as fh:
            _npy_header(fh, (10**10,), "|u1")
            fh.write(b"\0" * 784)
        return path, "over the limit of"
    if case == "npy float64 stack over the image limit":
        with path.open("wb") as fh:
            _npy_header(fh, (200_000, 784), "<f8")
        return path, "(200000, 784) holds 156,800,000 values"
    if case == "npy object array":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        return path, "dtype object; expected numbers"
    if case == "npy structured array":
        np.save(path, np.zeros(3, dtype=[("a", "u1"), ("b", "f4")]))
        return path, "expected numbers"
    if case == "npy truncated data":
        with path.open("wb") as fh:
            _npy_header(fh, (10, 28, 28), "|u1")
            fh.write(b"\0" * 100)
        return path, "not a readable NumPy file"
    if case == "npy that is a pickle":
        import pickle

        path.write_bytes(pickle.dumps(_WritesMarker(str(tmp / "pickle-ran.txt"))))
        return path, "not a NumPy .npy or .npz file"
    if case == "npy sparse 2 GiB file":
        with path.open("wb") as fh:
            _npy_header(fh, (28, 28), "|u1")
            fh.truncate(2 << 30)
        return path, "over the limit of 1,073,741,824 for an input file"
    if case == "npz holding an object array":
        np.savez(path, x=np.array([1, "a", None], dtype=object))
        return path, "dtype object; expected numbers"
    if case == "npz zip bomb (ratio)":
        _zero_bomb(path, 60_000)  # 47 MB of zeros in ~50 KB
        return path, "as a zip bomb does"
    if case == "npz zip bomb (declared size)":
        _zero_bomb(path, 1_000_000)  # 784 MB
        return path, "over the limit of"
    if case == "npz with 5000 members":
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            for i in range(5000):
                archive.writestr(f"a{i}.npy", b"")
        return path, "5,000 members"
    if case == "png over twice Pillow's pixel limit":
        _png_header_only(path, 20_000, 20_000)  # 400 M pixels: Pillow's own error
        return path, "Pillow's limit for decompression bombs"
    if case == "png over Pillow's pixel limit":
        _png_header_only(path, 10_000, 10_000)  # 100 M pixels: Pillow only warns
        return path, "Pillow's limit for decompression bombs"
    raise AssertionError(case)


HOSTILE_INPUTS = [
    "npy header claims 10**10 values",
    "npy float64 stack over the image limit",
    "npy object array",
    "npy structured array",
    "npy truncated data",
    "npy that is a pickle",
    "npy sparse 2 GiB file",
    "npz holding an object array",
    "npz zip bomb (ratio)",
    "npz zip bomb (declared size)",
    "npz with 5000 members",
    "png over twice Pillow's pixel limit",
    "png over Pillow's pixel limit",
]
MAX_RSS_MB = 200  # the CLI itself takes ~50 MB; a loaded bomb would take hundreds
# The CLI in a fresh process that reports its own peak memory (KiB) on stdout: VmHWM, the
# high-water mark of this program's memory (ru_maxrss would include the forking parent's).
MEASURED_CLI = (
    "import re, sys\n"
    "from nnsweep.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read()\n"
    "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize("case", HOSTILE_INPUTS)
def test_hostile_predict_input_is_one_line_exit_2_in_bounded_time_and_memory(
    tmp_path: Path, case: str
) -> None:
    path, expected = _hostile_input(case, tmp_path)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED_CLI, "predict", str(tmp_path / "m.keras"), str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nnsweep: error: INPUT {path}"), proc.stderr
    assert expected in lines[0], lines[0]
    assert elapsed < 10
    peak_mb = int(proc.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mb < MAX_RSS_MB, f"{peak_mb:.0f} MB"
    assert not (tmp_path / "pickle-ran.txt").exists()


# -- names and paths stay in their lane ----------------------------------------------------------
FORCE_REFUSALS = {
    "someone's files": {"notes.txt": "mine"},
    "a card of another tool": {"model_card.json": '{"format": "hf.card/2"}', "w.bin": "x"},
    "a card that is not JSON": {"model_card.json": "{not json", "w.bin": "x"},
    "a card that is a JSON list": {"model_card.json": "[1, 2]"},
}


@pytest.mark.parametrize("case", list(FORCE_REFUSALS))
def test_export_force_replaces_only_an_earlier_export(
    cli: Cli, stores: Stores, tmp_path: Path, case: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name, text in FORCE_REFUSALS[case].items():
        (out / name).write_text(text, encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = cli("export", "tiny", "--out", out, "--force", *stores.args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "--force replaces an earlier nnsweep export only" in lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing deleted


def test_export_force_accepts_a_folder_with_an_nnsweep_card_and_not_a_linked_one(
    tmp_path: Path,
) -> None:
    import json

    from nnsweep.card import CARD_FORMAT
    from nnsweep.errors import ExportError
    from nnsweep.export import check_out_dir

    card = json.dumps({"format": CARD_FORMAT, "study": "tiny"})
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "model_card.json").write_text(card, encoding="utf-8")
    (earlier / "model.keras").write_bytes(b"old")
    check_out_dir(earlier, force=True)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "data.csv").write_text("precious", encoding="utf-8")
    (linked / "model_card.json").symlink_to(earlier / "model_card.json")
    with pytest.raises(ExportError, match="earlier nnsweep export only"):
        check_out_dir(linked, force=True)


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", ".", "/etc", "bell\a", "x\\y"])
def test_report_folder_named_after_a_study_stays_in_reports(
    cli: Cli, stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("report", name, *stores.args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "cannot name a folder inside reports/" in lines[0], result.err
    assert "--out FOLDER" in lines[0]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "reports").exists()


def test_report_folder_through_a_link_out_of_reports_is_refused(tmp_path: Path) -> None:
    from nnsweep.errors import ExportError
    from nnsweep.paths import child_dir

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "tiny").mkdir()
    assert child_dir(reports, "tiny") == reports / "tiny"
    (reports / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ExportError, match="cannot name a folder inside"):
        child_dir(reports, "linked")
