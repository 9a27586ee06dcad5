"""Store addresses and start-up: defaults beside each other, turns on local files, retries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from nnsweep.errors import StorageError, StoreBusyError
from nnsweep.stores import (
    artifact_location,
    is_race,
    resolve,
    resolve_storage,
    retry_race,
    startup_lock,
    startup_lock_paths,
    takes_concurrent_writers,
)
from tests.conftest import CliResult


def test_default_stores_and_artifacts_sit_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NNSWEEP_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve(None, None) == ("journal:///optuna.log", "sqlite:///mlflow.db")
    uri = f"sqlite:///{tmp_path}/m.db"
    assert artifact_location(uri, "x") == (tmp_path / "mlruns" / "x").as_uri()
    assert artifact_location("http://mlflow:5000", "x") is None


def test_an_earlier_sqlite_default_keeps_being_used_until_a_journal_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NNSWEEP_STORAGE", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_storage(None, uri) == f"journal:///{tmp_path}/optuna.log"
    (tmp_path / "optuna.db").write_bytes(b"")  # a folder that ran an earlier nnsweep
    assert resolve_storage(None, uri) == f"sqlite:///{tmp_path}/optuna.db"
    assert not takes_concurrent_writers(resolve_storage(None, uri))
    (tmp_path / "optuna.log").write_bytes(b"")  # moved on: the journal wins
    assert resolve_storage(None, uri) == f"journal:///{tmp_path}/optuna.log"
    assert resolve_storage("sqlite:///x.db", uri) == "sqlite:///x.db"  # a flag always wins


@pytest.mark.parametrize(
    ("url", "concurrent"),
    [
        ("journal:///optuna.log", True),
        ("postgresql+psycopg://u:p@db/optuna", True),
        ("sqlite:///optuna.db", False),
        ("sqlite:////abs/optuna.db?timeout=60", False),
    ],
)
def test_takes_concurrent_writers(url: str, concurrent: bool) -> None:
    assert takes_concurrent_writers(url) is concurrent


def _race() -> IntegrityError:
    return IntegrityError("INSERT …", {}, Exception("UNIQUE constraint failed: studies.name"))


@pytest.mark.parametrize(
    ("exc", "race"),
    [
        (_race(), True),
        (OperationalError("x", {}, Exception("database is locked")), True),
        (RuntimeError('relation "studies" already exists'), True),
        (RuntimeError("password authentication failed"), False),
        (StorageError("study 's' already exists and is maximized"), False),  # ours: bad input
    ],
)
def test_is_race_tells_a_lost_race_from_a_real_error(exc: Exception, race: bool) -> None:
    assert is_race(exc) is race


def test_retry_race_repeats_a_lost_step_and_passes_other_errors_through() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _race()
        return "made"

    assert retry_race(flaky, "step") == "made" and len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad URL")

    calls.clear()
    with pytest.raises(ValueError, match="bad URL"):
        retry_race(broken, "step")
    assert len(calls) == 1


def test_a_race_lost_every_time_is_a_run_time_failure_not_bad_input() -> None:
    def always() -> None:
        raise _race()

    with pytest.raises(StoreBusyError, match="step: other processes kept doing") as info:
        retry_race(always, "step", attempts=2)
    assert info.value.exit_code == 1


def test_startup_lock_makes_processes_on_one_local_store_take_turns(tmp_path: Path) -> None:
    storage, tracking = f"sqlite:///{tmp_path}/o.db", f"sqlite:///{tmp_path}/m.db"
    paths = startup_lock_paths(storage, tracking, "http://server:5000")
    assert paths == sorted([tmp_path / ".m.db.lock", tmp_path / ".o.db.lock"])
    probe = (
        "import fcntl, sys\n"
        "f = open(sys.argv[1], 'a')\n"
        "try:\n"
        "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except OSError:\n"
        "    sys.exit(3)\n"
    )

    def other_process_gets(path: Path) -> bool:
        done = subprocess.run([sys.executable, "-c", probe, str(path)], check=False)
        return done.returncode == 0

    with startup_lock(storage, tracking):
        assert not other_process_gets(paths[0]) and not other_process_gets(paths[1])
    assert other_process_gets(paths[0]) and other_process_gets(paths[1])


def test_reading_a_journal_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    from nnsweep.errors import StudyNotFoundError
    from nnsweep.study.storage import list_studies, load_study

    url = f"journal:///{tmp_path / 'optuna.log'}"
    assert list_studies(url) == []
    with pytest.raises(StudyNotFoundError, match="none yet"):
        load_study("quickstart", url)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_study_in_an_earlier_default_optuna_db_resumes_there_without_flags(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_sweep: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    import optuna

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NNSWEEP_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sweep = write_sweep(trials=1, train={"epochs": 1, "batch_size": 128})
    # what an earlier nnsweep wrote by default: optuna.db beside mlflow.db
    first = cli("run", sweep, "--storage", "sqlite:///optuna.db", "--quiet")
    assert first.code == 0, first.err
    again = cli("run", sweep, "--trials", "2")  # no flags: --jobs auto, default stores
    assert again.code == 0, again.err
    assert "resuming study tiny: 1 COMPLETE" in again.err
    assert "2 COMPLETE in total" in again.out
    assert not (tmp_path / "optuna.log").exists()
    study = optuna.load_study(study_name="tiny", storage="sqlite:///optuna.db")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
