"""Optuna's dashboard as a user sees it: a real study, `nnsweep dashboard`, headless Chromium.

A study of synthetic finished trials (Optuna's ``create_trial``; nothing is trained) in a real
storage, a journal file or SQLite; ``nnsweep dashboard STUDY --storage URL --port P`` started in
a subprocess as a user would; the URL it prints opened in Debian's headless Chromium (the
harness of test_browser.py), which must show the study's name, its trials and its best value;
then Ctrl-C, after which no process it started is left and the port is free. The storage URL
must reach the server through its environment only: no process that ``nnsweep dashboard``
starts has it on its command line (``ps`` shows command lines to every local user). On
PostgreSQL (with NNSWEEP_TEST_POSTGRES_URL, as CI sets it), the URL holds a real password, given
in $NNSWEEP_STORAGE: it is on no command line and never printed.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nnsweep.ui.server import check_port
from tests._browser import child_pids, open_page, require_browser
from tests._uiproc import UiProcess, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STUDY = "dash-study"
OTHER = "other-study"  # a second study in the same storage: the printed URL must pick STUDY
LEARNING_RATES = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
VALUES = [0.8125, 0.8438, 0.9317, 0.875, 0.7969]  # val accuracy; trial 2 is the best


def _make_study(url: str) -> None:
    """STUDY with five finished trials (and OTHER with one), written through Optuna's own API."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage: object = url
    if url.startswith("journal:///"):
        storage = JournalStorage(JournalFileBackend(url.removeprefix("journal:///")))
    dists = {
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "activation": CategoricalDistribution(["relu", "tanh"]),
    }
    study = optuna.create_study(study_name=OTHER, storage=storage, direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={"learning_rate": 1e-3, "activation": "relu"}, distributions=dists, value=0.5
        )
    )
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    for i, (lr, value) in enumerate(zip(LEARNING_RATES, VALUES, strict=True)):
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": lr, "activation": ("relu", "tanh")[i % 2]},
                distributions=dists,
                value=value,
            )
        )
    assert study.best_value == max(VALUES)


def _descendants(pid: int) -> Iterator[int]:
    for child in child_pids(pid):
        yield child
        yield from _descendants(child)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"  # a zombie has stopped; only its parent's wait is missing


@pytest.fixture(params=["journal", "sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage of each kind the dashboard reads (PostgreSQL: a fresh database, or a skip)."""
    if request.param == "journal":
        return f"journal:///{tmp_path / 'optuna.log'}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    fresh: Callable[[], str] = request.getfixturevalue("fresh_postgres")
    return fresh()


def test_dashboard_serves_the_study_in_chromium(storage_url: str, tmp_path: Path) -> None:
    require_browser()
    url = storage_url
    kind = url.split(":", 1)[0].split("+", 1)[0]
    _make_study(url)
    secret = urllib.parse.urlsplit(url).password if kind == "postgresql" else None
    assert kind != "postgresql" or secret, "NNSWEEP_TEST_POSTGRES_URL should hold a password"

    # As a user starts it: with the URL on nnsweep's command line (journal), or in
    # $NNSWEEP_STORAGE (SQLite, PostgreSQL), which keeps it off every command line.
    port = free_port()
    args = [STUDY, "--port", str(port)]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    if kind == "journal":
        args += ["--storage", url]
    else:
        env["NNSWEEP_STORAGE"] = url
    dash = UiProcess(args, cwd=tmp_path, env=env, subcommand="dashboard")
    started: list[int] = []
    try:
        ready = dash.wait_for(r"Optuna dashboard ready in \d+ s: (\S+)", timeout=60)
        base = f"http://127.0.0.1:{port}"
        page_url = ready.group(1)
        assert page_url.startswith(f"{base}/dashboard/studies/"), page_url
        assert "press Ctrl-C to stop" in dash.output

        started = list(_descendants(dash.proc.pid))
        assert len(started) >= 2, dash.output  # the guard and optuna-dashboard under it
        for pid in started:
            assert url not in _cmdline(pid), (pid, _cmdline(pid))
        if kind == "journal":  # where the user typed it: the check does read command lines
            assert url in _cmdline(dash.proc.pid)
        else:
            assert url not in _cmdline(dash.proc.pid)
        if secret:
            for pid in [dash.proc.pid, *started]:
                assert secret not in _cmdline(pid), pid
            assert secret not in dash.output  # the URL is printed masked

        with open_page(tmp_path) as page:
            page.open(page_url)
            # The study's page: its name and id (the printed URL's), the best trial and its value.
            study_id = page_url.rstrip("/").rsplit("/", 1)[1]
            page.wait_text(f"{STUDY} (id={study_id})", "Best Trial", str(max(VALUES)))
            assert OTHER not in page.text()
            page.shot(f"dashboard-{kind}-study")
            # Its trial list: every trial, numbered from 0 as Optuna counts them.
            page.open(page_url.rstrip("/") + "/trials")
            page.wait_text(*(f"Trial {i}" for i in range(len(VALUES))))
            assert f"Trial {len(VALUES)}" not in page.text()
            page.shot(f"dashboard-{kind}-trials")
            # The list of studies: both.
            page.open(f"{base}/dashboard")
            page.wait_text(STUDY, OTHER)
            page.shot(f"dashboard-{kind}-studies")
    finally:
        code = dash.stop() if dash.proc.poll() is None else dash.proc.returncode

    # -- Ctrl-C stops everything --------------------------------------------------------------
    assert code == 0, dash.output
    assert dash.lines[-1] == "Optuna dashboard stopped", dash.output
    assert not secret or secret not in dash.output  # nor printed by the dashboard later
    deadline = time.monotonic() + 10
    while (left := [p for p in started if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left running: {[_cmdline(p) for p in left]}"
    check_port("127.0.0.1", port)  # and the port is free again
