"""Sweeps that survive crashes and Ctrl-C, and pruners that prune: real processes, real stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

import nnsweep.data.load
import nnsweep.sweep.run
from nnsweep.spec.config import load_spec
from nnsweep.study.storage import create_or_resume
from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]
SLOW_TRIALS = {
    "trials": 3,
    "sampler": "random",
    "train": {"epochs": 8, "batch_size": 32},
    "space": {"n_layers": 1, "units": [64, 96], "activation": "relu"},
}


def _start(stores: Stores, sweep: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "NNSWEEP_STORAGE": stores.storage,
        "MLFLOW_TRACKING_URI": stores.tracking_uri,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "nnsweep", "run", str(sweep), "--quiet"],
        cwd=stores.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_mid_trial(stores: Stores, name: str, min_complete: int, timeout: float = 240) -> int:
    """Poll the study until a trial is RUNNING with an epoch done; return its number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=name, storage=stores.storage)
        except KeyError:
            time.sleep(0.5)
            continue
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        if done >= min_complete and running:
            return running[0].number
        time.sleep(0.3)
    raise AssertionError("no trial reached mid-training in time")


def _trial_runs(stores: Stores, name: str) -> list:
    client = MlflowClient(stores.tracking_uri)
    exp = client.get_experiment_by_name(name)
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    sweep = write_sweep(name="crash", **SLOW_TRIALS)
    proc = _start(stores, sweep)
    killed = _wait_mid_trial(stores, "crash", min_complete=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    result = cli("run", sweep, *stores.args, "--quiet")
    assert result.code == 0, result.err

    study = optuna.load_study(study_name="crash", storage=stores.storage)
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.COMPLETE] == 3
    assert study.trials[killed].state == TrialState.FAIL
    assert states[TrialState.RUNNING] == 0

    runs = _trial_runs(stores, "crash")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("nnsweep.role") == "trial"]
    per_trial = Counter(r.data.tags["nnsweep.trial"] for r in children)
    assert set(per_trial.values()) == {1}, per_trial  # one MLflow run per trial, never two
    run_ids = {t.user_attrs["nnsweep.mlflow_run_id"] for t in study.trials}
    assert run_ids == {r.info.run_id for r in children}
    dead = next(r for r in children if r.data.tags["nnsweep.trial"] == str(killed))
    assert dead.info.status == "KILLED" and dead.data.tags["nnsweep.state"] == "FAIL"
    parents = [r for r in runs if r.data.tags.get("nnsweep.role") == "study"]
    assert sorted(r.info.status for r in parents) == ["FINISHED", "KILLED"]
    # the killed trial was retried once, with the same params, as a new trial
    retried = [
        t for t in study.trials if t.number != killed and t.params == study.trials[killed].params
    ]
    assert retried


@pytest.mark.slow
def test_ctrl_c_marks_the_trial_and_says_how_to_resume(
    stores: Stores, write_sweep: Callable[..., Path]
) -> None:
    sweep = write_sweep(name="interrupt", **SLOW_TRIALS)
    proc = _start(stores, sweep)
    number = _wait_mid_trial(stores, "interrupt", min_complete=0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in err.strip().splitlines()[-1]

    study = optuna.load_study(study_name="interrupt", storage=stores.storage)
    assert study.trials[number].state == TrialState.FAIL
    assert study.trials[number].user_attrs["nnsweep.fail_reason"] == "interrupted (Ctrl-C)"
    runs = _trial_runs(stores, "interrupt")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    trial = next(r for r in runs if r.data.tags.get("nnsweep.trial") == str(number))
    assert trial.info.status == "FAILED" and trial.data.tags["nnsweep.state"] == "FAIL"
    assert trial.data.tags["nnsweep.fail_reason"] == "interrupted (Ctrl-C)"
    parent = next(r for r in runs if r.data.tags.get("nnsweep.role") == "study")
    assert parent.info.status == "KILLED"


GOOD = {"learning_rate": 0.01}
BAD = {"learning_rate": 1e-6}
PRUNERS = [
    {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 2},  # judged at epochs 3-4
    {"name": "successive_halving", "min_resource": 1, "reduction_factor": 2},
    {"name": "hyperband", "min_resource": 1, "reduction_factor": 2},
]
ORDER = (GOOD, GOOD, BAD, BAD, GOOD, BAD, BAD, GOOD, BAD, BAD, GOOD, BAD, GOOD, GOOD)


@pytest.mark.slow
@pytest.mark.parametrize("pruner", PRUNERS, ids=[p["name"] for p in PRUNERS])
def test_each_pruner_prunes_losers_and_keeps_their_partial_curves(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli, pruner: dict
) -> None:
    name = f"prune_{pruner['name']}"
    sweep = write_sweep(
        # Hyperband runs successive halving per bracket, so it needs more trials to compare
        name=name,
        trials=6 if pruner["name"] == "hyperband" else 2,
        pruner=pruner,
        train={"epochs": 4, "batch_size": 128},
        space={"n_layers": 1, "units": 16, "activation": "relu", "learning_rate": [0.01, 1e-6]},
    )
    study = create_or_resume(load_spec(sweep), stores.storage, name)
    for point in ORDER:
        study.enqueue_trial(point)
    # one process: the queued order decides what each pruner compares (with side-by-side
    # workers a strict median pruner can cut dozens of good trials before 3 complete)
    result = cli("run", sweep, *stores.args, "--quiet", "--jobs", "1")
    assert result.code == 0, result.err

    study = optuna.load_study(study_name=name, storage=stores.storage)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state.name, t.params) for t in study.trials]
    assert any(t.params["learning_rate"] == 1e-6 for t in pruned)  # a loser was cut short
    client = MlflowClient(stores.tracking_uri)
    for t in pruned:
        run = client.get_run(t.user_attrs["nnsweep.mlflow_run_id"])
        assert run.data.tags["nnsweep.state"] == "PRUNED" and run.info.status == "FINISHED"
        curve = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert len(curve) == max(t.intermediate_values)  # curve up to the epoch it was cut


@pytest.mark.slow
def test_trials_count_all_counts_pruned_trials_like_optunas_n_trials(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    sweep = write_sweep(
        name="count_all",
        trials=4,
        trials_count="all",
        pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        train={"epochs": 3, "batch_size": 128},
        space={"n_layers": 1, "units": 16, "activation": "relu", "learning_rate": [0.01, 1e-6]},
    )
    study = create_or_resume(load_spec(sweep), stores.storage, "count_all")
    for point in ORDER:
        study.enqueue_trial(point)

    def states() -> Counter[str]:
        st = optuna.load_study(study_name="count_all", storage=stores.storage)
        return Counter(t.state.name for t in st.trials)

    assert cli("run", sweep, *stores.args, "--quiet").code == 0
    first = states()
    assert first["COMPLETE"] + first["PRUNED"] == 4 and first["PRUNED"] >= 1, first
    again = cli("run", sweep, *stores.args, "--quiet")
    assert "already has its target of 4 trials" in again.out
    assert cli("run", sweep, *stores.args, "--quiet", "--trials", "6").code == 0
    second = states()
    assert second["COMPLETE"] + second["PRUNED"] == 6 and second["WAITING"] == 8, second


@pytest.mark.slow
def test_a_sweep_never_reads_the_test_split(
    tmp_path: Path, write_sweep: Callable[..., Path], cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every test image and label NaN, the sweep runs and scores exactly as with the real
    test split: no choice and no logged number of a sweep comes from it."""
    sweep = write_sweep("blind", trials=2)

    def run(folder: str) -> tuple[list[Any], list[Any]]:
        root = tmp_path / folder
        root.mkdir()
        stores = Stores(root, f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")
        result = cli("run", sweep, "--quiet", *stores.args)
        assert result.code == 0, result.err
        study = optuna.load_study(study_name="blind", storage=stores.storage)
        runs = [r for r in _trial_runs(stores, "blind") if r.data.tags["nnsweep.role"] == "trial"]
        metrics = [v for r in runs for v in r.data.metrics.values()]
        assert metrics and all(np.isfinite(metrics)), metrics  # no NaN leaked into a run
        return [(t.number, t.state.name, t.params) for t in study.trials], [
            t.value for t in study.trials
        ]

    trials, values = run("clean")

    loads = []
    real = nnsweep.data.load.load_dataset

    def blind_test_split(*args: Any, **kwargs: Any) -> nnsweep.data.load.Dataset:
        data = real(*args, **kwargs)
        loads.append(args)
        return replace(
            data,
            x_test=np.full(data.x_test.shape, np.nan, np.float32),
            y_test=np.full(data.y_test.shape, np.nan),
        )

    # the sweep loads through sweep_dataset, which looks load_dataset up in its own module
    monkeypatch.setattr(nnsweep.data.load, "load_dataset", blind_test_split)
    blind_trials, blind_values = run("blind")
    assert loads, "the sweep did not load its data through the patched loader"
    assert blind_trials == trials
    assert blind_values == pytest.approx(values, abs=1e-9)


def _table(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 30))
    header = ",".join(f"f{i}" for i in range(30)) + ",y\n"
    rows = "".join(",".join(f"{v:.4f}" for v in r) + f",{r[0] * 2 + 10:.4f}\n" for r in x)
    path = folder / "t.csv"
    path.write_text(header + rows, encoding="utf-8")
    return path


def test_prepare_gives_an_inferred_task_its_objective(tmp_path: Path) -> None:
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import parse_spec
    from nnsweep.sweep.prepare import prepare

    base = f"name: t\ntrials: 1\ndataset: {{path: {_table(tmp_path)}, target: y}}\n"
    spec, data = prepare(parse_spec(base))
    assert data.task.kind == "regression"
    assert (spec.objective.metric, spec.objective.direction) == ("val_mae", "minimize")
    spec, _ = prepare(parse_spec(base + "objective: {metric: val_loss, reduce: last}\n"))
    assert (spec.objective.metric, spec.objective.reduce) == ("val_loss", "last")
    with pytest.raises(SpecError, match="'val_accuracy' is not logged for a regression task"):
        prepare(parse_spec(base + "objective: val_accuracy\n"))


def test_preflight_sizes_a_table_model_by_its_loaded_width(stores: Stores) -> None:
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import parse_spec
    from nnsweep.sweep.prepare import preflight

    spec = parse_spec(
        f"name: t\ntrials: 1\ndataset: {{path: {_table(stores.root)}, target: y}}\n"
        "space: {units: 64}\nlimits: {max_params: 1500}\n"
    )  # (30 + 1) * 64 + 65 = 2,049 parameters: over the limit only once 30 columns are known
    with pytest.raises(SpecError, match="max_params"):
        preflight(spec, storage_url=stores.storage, tracking_uri=stores.tracking_uri)
    assert not list(stores.root.glob("*.db"))


# -- the timeout is a budget -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "took", "stop"),
    [
        (0.0, [], False),  # the first trial always starts
        (10.0, [], True),  # past the deadline
        (5.0, [3.0, 4.0, 9.0], False),  # 5 + median 4 = 9 < 10
        (7.0, [3.0, 4.0, 9.0], True),  # 7 + 4 = 11 > 10: it would end after the deadline
    ],
)
def test_no_trial_starts_that_would_end_after_the_deadline(now, took, stop):
    assert nnsweep.sweep.run.past_deadline(now, took, deadline=10.0) is stop


def test_trial_loop_ends_within_its_timeout():
    """Trials of 0.4 s under a 1.0 s timeout: two run, and the third (which would end at about
    1.2 s) does not start; the loop used to start it at 0.8 s and end past the timeout."""
    from types import SimpleNamespace

    study = optuna.create_study()  # in memory

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.4)
        return 0.0

    spec = SimpleNamespace(timeout=1.0, trials=None, trials_count="complete")
    budget = nnsweep.sweep.run._Budget(None, "complete")
    never = SimpleNamespace(check=lambda study: False)
    start = time.monotonic()
    nnsweep.sweep.run._trial_loop(study, spec, objective, budget, never, [])  # type: ignore[arg-type]
    elapsed = time.monotonic() - start
    assert len(study.trials) == 2 and elapsed < 1.0
