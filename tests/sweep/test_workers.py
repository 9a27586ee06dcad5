"""Scale-out: several worker processes on one study, through Optuna's shared storages."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from nnsweep.train.devices import WorkerPlan
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
def test_two_jobs_share_a_journal_storage_and_show_one_progress_stream(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    storage = f"journal:///{stores.root / 'optuna.log'}"
    sweep = write_sweep(name="journal", **FAST)
    result = cli(
        "run", sweep, "--storage", storage, "--tracking-uri", stores.tracking_uri, "--jobs", "2"
    )
    assert result.code == 0, result.err
    # the parent reads the storage and shows every trial once; the workers stay quiet
    assert "[worker" not in result.err
    shown = re.findall(r"^trial +(\d+) (?:COMPLETE|PRUNED|FAIL)", result.err, re.MULTILINE)
    assert len(shown) == len(set(shown)) >= 6, result.err
    assert "COMPLETE (2 workers)" in result.out
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(stores.root / "optuna.log"))
    )
    runs = _check_study(journal, "journal", stores.tracking_uri, 6)
    assert sum(r.data.tags.get("nnsweep.role") == "study" for r in runs) == 2  # one per worker


def _plain_env() -> dict[str, str]:
    """The environment without store URLs: the defaults in the working directory apply."""
    drop = ("NNSWEEP_STORAGE", "MLFLOW_TRACKING_URI")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9 of one worker", "Ctrl-C of the whole command"])
def test_a_sweep_stopped_under_the_defaults_completes_exactly_when_run_again(
    tmp_path: Path, write_sweep: Callable[..., Path], how: str
) -> None:
    """No flags: --jobs auto, the default journal storage and mlflow.db. In the middle of a
    trial, one worker is killed with SIGKILL, or the terminal's Ctrl-C (SIGINT to the process
    group) stops them all; the sweep, run again, ends with exactly `trials` COMPLETE trials
    and no trial with two MLflow runs."""
    from nnsweep.train.devices import available_cores

    stopped = {**FAST, "trials": 4, "train": {"epochs": 4}}  # 2 workers, 2 trials each
    sweep = write_sweep(name="stopped", **stopped)
    cmd = [sys.executable, "-m", "nnsweep", "run", str(sweep)]
    if available_cores() < 2:  # auto would pick one worker here: ask for the two it picks on 2
        cmd += ["--jobs", "2"]
    parent = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=_plain_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell gives a command
    )
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if not (tmp_path / "optuna.log").exists():
            continue
        try:
            journal = _journal(tmp_path / "optuna.log")
            study = optuna.load_study(study_name="stopped", storage=journal)
        except KeyError:
            continue
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = int(trial.user_attrs.get("nnsweep.pid", 0))
            if pid and pid != parent.pid and trial.intermediate_values:  # mid-training
                if how.startswith("kill"):
                    os.kill(pid, signal.SIGKILL)
                else:
                    os.killpg(parent.pid, signal.SIGINT)
                victim = trial.number
                break
    _, err = parent.communicate(timeout=600)
    assert victim is not None, err.decode()[-2000:]
    if how.startswith("kill"):  # 0: the other worker finished the study
        assert parent.returncode in (0, 1), err.decode()[-2000:]
    else:
        assert parent.returncode == 130, err.decode()[-2000:]
    assert not (tmp_path / "optuna.db").exists()  # the default storage is the journal

    again = subprocess.run(cmd, cwd=tmp_path, env=_plain_env(), capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    journal = _journal(tmp_path / "optuna.log")
    _check_study(journal, "stopped", f"sqlite:///{tmp_path}/mlflow.db", stopped["trials"])
    study = optuna.load_study(study_name="stopped", storage=journal)
    assert study.trials[victim].state == TrialState.FAIL


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0"], "--jobs: must be 'auto' or a whole number >= 1, but got '0'"),
        (["--jobs", "many"], "--jobs: must be 'auto' or a whole number >= 1"),
        (["--gpus", "7"], "--gpus: 7 is not a visible GPU"),
        (["--gpus", "0,,1"], "--gpus: '0,,1' has an empty entry"),
    ],
)
def test_bad_jobs_or_gpus_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path,
    write_sweep: Callable[..., Path],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NNSWEEP_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sweep = write_sweep()
    result = cli("run", sweep, *args)
    assert result.code == 2
    assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [sweep.name]


def _plan(
    monkeypatch: pytest.MonkeyPatch,
    write_sweep: Callable[..., Path],
    cores: int,
    storage: str = "journal:///optuna.log",
) -> tuple[WorkerPlan, str | None]:
    from nnsweep.spec.config import load_spec
    from nnsweep.sweep.workers import plan_jobs
    from nnsweep.train import devices

    monkeypatch.setattr(devices, "available_cores", lambda: cores)
    monkeypatch.setattr(devices, "visible_gpus", lambda: ())
    monkeypatch.setattr(devices, "available_memory", lambda: None)
    dataset = SimpleNamespace(input_width=784, n_outputs=10)
    spec = load_spec(write_sweep(trials=8))
    return plan_jobs(spec, dataset, jobs=None, gpus=(), storage_url=storage)  # type: ignore[arg-type]


@pytest.mark.parametrize(("cores", "jobs"), [(1, 1), (2, 2), (16, 8)])
def test_auto_plans_one_worker_per_core_for_small_models_capped_by_trials(
    monkeypatch: pytest.MonkeyPatch, write_sweep: Callable[..., Path], cores: int, jobs: int
) -> None:
    plan, note = _plan(monkeypatch, write_sweep, cores)
    assert plan.jobs == jobs and note is None
    if jobs > 1:
        assert plan.env(0)["TF_NUM_INTRAOP_THREADS"] == str(cores // jobs)


def test_auto_on_a_sqlite_storage_is_one_process_with_a_note(
    monkeypatch: pytest.MonkeyPatch, write_sweep: Callable[..., Path]
) -> None:
    plan, note = _plan(monkeypatch, write_sweep, 4, "sqlite:///optuna.db")
    assert plan.jobs == 1
    assert note is not None and "SQLite file, which takes one writer" in note
    assert "--storage journal:///optuna.log" in note


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
def test_two_processes_started_at_once_on_fresh_default_stores(
    tmp_path: Path, write_sweep: Callable[..., Path]
) -> None:
    """By hand, as a user or a Compose file would: one process each, no URLs, one directory."""
    sweep = write_sweep(name="race", **RACE)
    env = _plain_env()
    cmd = [sys.executable, "-m", "nnsweep", "run", str(sweep), "--quiet", "--jobs", "1"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    journal = _journal(tmp_path / "optuna.log")
    study = optuna.load_study(study_name="race", storage=journal)
    drawn = [tuple(sorted(t.params.items())) for t in study.trials if t.params]
    assert len(set(drawn)) == len(drawn), drawn  # no two trials with the same params
    runs = _check_study(journal, "race", f"sqlite:///{tmp_path}/mlflow.db", 4)
    assert sum(r.data.tags.get("nnsweep.role") == "study" for r in runs) == 2


@pytest.mark.parametrize(
    ("visible", "chosen", "expected"),
    [
        ((), (), None),  # a CPU machine: the environment is left exactly as it was
        (("0", "1"), ("1",), "1"),
        (("0", "1"), (), ""),  # --gpus none on a GPU machine
    ],
)
def test_a_single_process_takes_its_gpus_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    visible: tuple[str, ...],
    chosen: tuple[str, ...],
    expected: str | None,
) -> None:
    from nnsweep.sweep.workers import use_gpus_here
    from nnsweep.train import devices
    from nnsweep.train.devices import ALLOW_GROWTH_ENV, CUDA_VISIBLE_DEVICES_ENV, plan_workers

    monkeypatch.setattr(devices, "visible_gpus", lambda: visible)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # not imported yet
    monkeypatch.delenv(CUDA_VISIBLE_DEVICES_ENV, raising=False)
    monkeypatch.delenv(ALLOW_GROWTH_ENV, raising=False)
    use_gpus_here(plan_workers(1, cores=2, gpus=chosen))
    assert os.environ.get(CUDA_VISIBLE_DEVICES_ENV) == expected
    assert os.environ.get(ALLOW_GROWTH_ENV) == (None if expected is None else "true")
