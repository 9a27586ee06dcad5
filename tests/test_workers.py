"""Scale-out: several worker processes on one study, through Optuna's shared storages."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]
POSTGRES_URL = os.environ.get("NNSWEEP_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    POSTGRES_URL is None, reason="set NNSWEEP_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)"
)
RACE = {  # continuous ranges: two trials share params only if their draws were seeded alike
    "trials": 4,
    "sampler": "random",
    "train": {"epochs": 1},
    "space": {
        "n_layers": 1,
        "units": {"low": 8, "high": 64},
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
    },
}
FAST = {
    "trials": 6,
    "sampler": "random",
    "train": {"epochs": 1},
    "space": {"n_layers": 1, "units": [8, 16]},
}


def test_plain_sqlite_is_refused_for_several_jobs(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    result = cli("run", write_sweep(), *stores.args, "--jobs", "2")
    assert result.code == 2
    assert "needs a storage that takes concurrent writers" in result.err
    assert "journal:///" in result.err
    assert not (stores.root / "optuna.db").exists()


def _check_study(storage: str, name: str, tracking_uri: str, n: int) -> list:
    study = optuna.load_study(study_name=name, storage=storage)
    trials = [t for t in study.trials if not t.user_attrs.get("nnsweep.surplus")]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n
    assert len({t.number for t in study.trials}) == len(study.trials)
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("nnsweep.role") == "trial"]
    per_trial = Counter(r.data.tags["nnsweep.trial"] for r in children)
    assert set(per_trial.values()) == {1}
    complete = [r for r in children if r.data.tags["nnsweep.state"] == "COMPLETE"]
    assert len(complete) == n
    assert not [r for r in runs if r.info.status == "RUNNING"]
    return runs


@pytest.mark.slow
def test_two_jobs_share_a_journal_storage(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    storage = f"journal:///{stores.root / 'optuna.log'}"
    sweep = write_sweep(name="journal", **FAST)
    result = cli(
        "run", sweep, "--storage", storage, "--tracking-uri", stores.tracking_uri, "--jobs", "2"
    )
    assert result.code == 0, result.err
    assert "[worker 0]" in result.err and "[worker 1]" in result.err
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(stores.root / "optuna.log"))
    )
    runs = _check_study(journal, "journal", stores.tracking_uri, 6)
    assert sum(r.data.tags.get("nnsweep.role") == "study" for r in runs) == 2  # one per worker


@pytest.mark.slow
@needs_postgres
def test_three_workers_on_postgresql_stop_at_exactly_the_target_and_hide_the_password(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    assert POSTGRES_URL is not None
    password = POSTGRES_URL.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    name = f"pg_{uuid.uuid4().hex[:8]}"
    sweep = write_sweep(name=name, **FAST)
    result = cli(
        "run",
        sweep,
        "--storage",
        POSTGRES_URL,
        "--tracking-uri",
        stores.tracking_uri,
        "--jobs",
        "3",
    )
    assert result.code == 0, result.err
    runs = _check_study(POSTGRES_URL, name, stores.tracking_uri, 6)
    assert sum(r.data.tags.get("nnsweep.role") == "study" for r in runs) == 3
    # the password is nowhere: not in output, not in the MLflow store (params, tags, texts)
    assert password not in result.out + result.err
    assert password.encode() not in (stores.root / "mlflow.db").read_bytes()
    for path in (stores.root / "mlruns").rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    parent = next(r for r in runs if r.data.tags.get("nnsweep.role") == "study")
    assert parent.data.tags["nnsweep.storage"].endswith("***@127.0.0.1:5432/nnsweep_ci") or (
        ":***@" in parent.data.tags["nnsweep.storage"]
    )


@needs_postgres
def test_wrong_postgres_password_is_masked_and_exits_2(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    assert POSTGRES_URL is not None
    bad = POSTGRES_URL.replace(":", ":x", 2).replace("x//", "//", 1)
    wrong = (
        POSTGRES_URL.split("@")[0].rsplit(":", 1)[0] + ":Wr0ngSecret@" + POSTGRES_URL.split("@")[1]
    )
    result = cli("run", write_sweep(), "--storage", wrong, "--tracking-uri", stores.tracking_uri)
    assert result.code == 2 and "cannot connect" in result.err
    assert "Wr0ngSecret" not in result.err and bad != wrong


@pytest.mark.slow
def test_two_processes_started_at_once_on_fresh_default_sqlite_stores(
    tmp_path: Path, write_sweep: Callable[..., Path]
) -> None:
    """By hand, as a user or a Compose file would: no --jobs, no URLs, one directory."""
    import subprocess
    import sys

    sweep = write_sweep(name="race", **RACE)
    env = {
        k: v for k, v in os.environ.items() if k not in ("NNSWEEP_STORAGE", "MLFLOW_TRACKING_URI")
    }
    cmd = [sys.executable, "-m", "nnsweep", "run", str(sweep), "--quiet"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="race", storage=f"sqlite:///{tmp_path}/optuna.db")
    drawn = [tuple(sorted(t.params.items())) for t in study.trials if t.params]
    assert len(set(drawn)) == len(drawn), drawn  # no two trials with the same params
    runs = _check_study(
        f"sqlite:///{tmp_path}/optuna.db", "race", f"sqlite:///{tmp_path}/mlflow.db", 4
    )
    assert sum(r.data.tags.get("nnsweep.role") == "study" for r in runs) == 2


@pytest.fixture
def fresh_postgres() -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL databases on the test server (dropped afterwards)."""
    assert POSTGRES_URL is not None
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"nnsweep_race_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.slow
@needs_postgres
def test_three_workers_started_at_once_on_fresh_postgresql_databases(
    tmp_path: Path, write_sweep: Callable[..., Path], fresh_postgres: Callable[[], str]
) -> None:
    """As a Kubernetes Job with parallelism 3 does it: each worker in its own empty directory,
    only environment variables pointing at the (fresh) databases."""
    import subprocess
    import sys

    storage, tracking = fresh_postgres(), fresh_postgres()
    sweep = write_sweep(name="pgrace", **RACE)
    env = {**os.environ, "NNSWEEP_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking}
    procs = []
    for i in range(3):
        workdir = tmp_path / f"worker{i}"
        workdir.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "nnsweep", "run", str(sweep), "--quiet"],
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    runs = _check_study(storage, "pgrace", tracking, RACE["trials"])
    assert sum(r.data.tags.get("nnsweep.role") == "study" for r in runs) == 3
    study = optuna.load_study(study_name="pgrace", storage=storage)
    drawn = [tuple(sorted(t.params.items())) for t in study.trials if t.params]
    assert len(set(drawn)) == len(drawn), drawn
