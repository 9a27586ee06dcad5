"""Scale-out as it is deployed: three ``nnsweep run`` workers started at the same moment, each
in its own empty directory with only environment variables, against a fresh ``mlflow server``
(PostgreSQL backend, artifacts proxied with ``--serve-artifacts --artifacts-destination``) and a
fresh PostgreSQL Optuna storage; then ``nnsweep export`` from a fourth directory.

Needs PostgreSQL: ``NNSWEEP_TEST_POSTGRES_URL`` (``.ci/run`` starts it and sets it); skipped
otherwise. Fresh databases are created on that server and dropped afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from nnsweep.names import ROLE_TAG, STATE_TAG, SURPLUS_ATTR, TRIAL_TAG
from tests._uiproc import free_port
from tests.conftest import TINY_SWEEP

POSTGRES_URL = os.environ.get("NNSWEEP_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        POSTGRES_URL is None, reason="set NNSWEEP_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)"
    ),
]
NAME = "pgscale"
TRIALS = 4
SWEEP = {
    **TINY_SWEEP,
    "name": NAME,
    "trials": TRIALS,
    "sampler": "random",
    "pruner": "none",
    "log_models": "all",  # every trial's model goes through the artifact proxy
    "train": {"epochs": 1, "batch_size": 128},
    "space": {
        "n_layers": 1,
        "units": {"low": 8, "high": 64},
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
    },
}
STORE_VARS = ("MLFLOW_TRACKING_URI", "NNSWEEP_STORAGE", "MLFLOW_REGISTRY_URI")


@pytest.fixture
def mlflow_server(tmp_path: Path, fresh_postgres: Callable[[], str]) -> Iterator[str]:
    """``mlflow server`` on a fresh PostgreSQL database, proxying artifacts to a folder; its
    URL. The backend URL (with its password) goes through the environment, not ``ps``."""
    from nnsweep.ui.server import wait_until_up

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARS}
    env["MLFLOW_BACKEND_STORE_URI"] = fresh_postgres()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "2", "--serve-artifacts"]
    cmd += ["--artifacts-destination", str(tmp_path / "artifact-store")]
    log = (tmp_path / "mlflow-server.log").open("w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(proc, url + "/health", timeout=240)
        except Exception:
            log.flush()
            pytest.fail((tmp_path / "mlflow-server.log").read_text()[-3000:])
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _nnsweep(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nnsweep", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_three_workers_at_once_on_fresh_postgresql_and_an_mlflow_server(
    tmp_path: Path, mlflow_server: str, fresh_postgres: Callable[[], str]
) -> None:
    import mlflow
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    storage = fresh_postgres()
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP, sort_keys=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARS}
    env |= {"NNSWEEP_STORAGE": storage, "MLFLOW_TRACKING_URI": mlflow_server}

    workdirs = [tmp_path / f"worker{i}" for i in range(3)]
    for d in workdirs:
        d.mkdir()
    # one process each (--jobs 1), as three pods of a Kubernetes Job: started together
    procs = [_nnsweep(d, env, "run", str(sweep), "--quiet", "--jobs", "1") for d in workdirs]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    for d in workdirs:  # nothing local: both stores are the services
        assert list(d.iterdir()) == [], list(d.iterdir())

    study = optuna.load_study(study_name=NAME, storage=storage)
    trials = [t for t in study.trials if not t.user_attrs.get(SURPLUS_ATTR)]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == TRIALS
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # three samplers seeded per trial number: no two workers drew the same continuous params
    drawn = [tuple(sorted(t.params.items())) for t in study.trials if t.params]
    assert len(set(drawn)) == len(drawn), drawn

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(NAME)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "study"]
    children = [r for r in runs if r.data.tags.get(ROLE_TAG) == "trial"]
    assert len(parents) == 3  # one per worker
    assert set(Counter(r.data.tags[TRIAL_TAG] for r in children).values()) == {1}
    assert {r.data.tags[TRIAL_TAG] for r in children} == {str(t.number) for t in trials}
    complete = [r for r in children if r.data.tags[STATE_TAG] == "COMPLETE"]
    assert len(complete) == TRIALS
    assert not [r for r in runs if r.info.status == "RUNNING"]

    # every COMPLETE trial's artifacts went through the server's proxy and come back from it
    artifact_store = tmp_path / "artifact-store"
    for run in complete:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "learning_curves.png" in names, names
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id,
            artifact_path="learning_curves.png",
            dst_path=str(tmp_path / "fetched" / run.info.run_id),
            tracking_uri=mlflow_server,
        )
        assert Path(local).stat().st_size > 1000
    assert any(p.name == "learning_curves.png" for p in artifact_store.rglob("*"))

    # a fourth directory exports the best model through the same services
    exporter = tmp_path / "exporter"
    exporter.mkdir()
    done = _nnsweep(exporter, env, "export", NAME, "--out", "best")
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-3000:]
    card = json.loads((exporter / "best" / "model_card.json").read_text(encoding="utf-8"))
    assert card["trial"] == study.best_trial.number
    assert (exporter / "best" / "model.keras").is_file()
    assert storage.split("@")[0].split(":")[-1] not in out + err  # the password stays masked
