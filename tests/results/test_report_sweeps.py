"""Real sweeps on public tables (scikit-learn's, written to CSV): report, compare and the UI link
rank the trials by the value Optuna scored each with, read back from what the runs logged.

Tiny training: a few hundred rows, 3 trials of 3 epochs, one worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from nnsweep.names import FIT_RULE_TAG, FIT_TAG
from nnsweep.results.report import OVERLAY_PNG, TABLE_CSV, TABLE_MD
from nnsweep.results.trials import BINARY_COLUMNS, REGRESSION_COLUMNS
from nnsweep.track.tracker import fetch_history
from nnsweep.ui.server import find_experiment
from tests.conftest import CliResult, Stores

SPACE = {
    "n_layers": 1,
    "units": {"low": 4, "high": 32, "log": True},
    "activation": ["relu", "tanh"],
    "optimizer": "adam",
    "learning_rate": {"low": 1.0e-3, "high": 3.0e-2, "log": True},
    "dropout": {"low": 0.0, "high": 0.3},
}


def _sweep(folder: Path, name: str, table: Path, target: str, objective: str | None) -> Path:
    data: dict[str, Any] = {
        "name": name,
        "dataset": {"path": str(table), "target": target, "validation": 0.25, "test": 0.2},
        "trials": 3,
        "seed": 0,
        "sampler": "random",
        "pruner": "none",
        "train": {"epochs": 3, "batch_size": 32},
        "space": SPACE,
    }
    if objective is not None:
        data["objective"] = objective
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _table(folder: Path, kind: str) -> tuple[Path, str]:
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if kind == "regression":
        frame = load_diabetes(as_frame=True, scaled=False).frame.head(300)
        target = "target"
    else:
        frame = load_breast_cancer(as_frame=True).frame.sample(300, random_state=0)
        frame.insert(0, "diagnosis", frame.pop("target").map({0: "M", 1: "B"}))
        target = "diagnosis"
    path = folder / f"{kind}.csv"
    frame.to_csv(path, index=False)
    return path, target


CASES = [
    # kind, objective in the file, metric, direction, reduce over epochs, diagnosis columns
    ("regression", None, "val_mae", "minimize", min, REGRESSION_COLUMNS),
    ("binary", "val_auc", "val_auc", "maximize", max, BINARY_COLUMNS),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "objective", "metric", "direction", "best_of", "columns"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_results_of_a_table_sweep_follow_its_task_and_objective(
    stores: Stores,
    cli: Callable[..., CliResult],
    kind: str,
    objective: str | None,
    metric: str,
    direction: str,
    best_of: Callable[[list[float]], float],
    columns: tuple[str, ...],
) -> None:
    table, target = _table(stores.root, kind)
    sweep = _sweep(stores.root, kind, table, target, objective)
    run = cli("run", sweep, "--jobs", "1", "-q", *stores.args)
    assert run.code == 0, run.err

    study = optuna.load_study(study_name=kind, storage=stores.storage)
    client = MlflowClient(stores.tracking_uri)
    values = {t.number: t.value for t in study.trials}
    assert len(values) == 3 and None not in values.values()

    data = json.loads(cli("compare", kind, "--json", *stores.args).out)
    assert (data["task"], data["metric"], data["direction"]) == (kind, metric, direction)
    rows = data["trials"]
    ranked = sorted(values, key=lambda n: values[n] if direction == "minimize" else -values[n])
    assert [r["trial"] for r in rows] == ranked  # best first, in the objective's direction
    expected_keys = {
        "trial", "state", "value", "params", *columns, "val_size", "fit", "fit_rule", "epochs",
    }  # fmt: skip
    for row in rows:
        assert set(row) == expected_keys | {"duration_s", "run_id"}
        history = fetch_history(client, row["run_id"])
        # the value the trial was scored with: the best epoch, not the last one
        assert row["value"] == pytest.approx(best_of(history[metric]))
        assert row["value"] == pytest.approx(values[row["trial"]])
        run = client.get_run(row["run_id"]).data
        assert run.metrics[f"objective_{metric}"] == pytest.approx(row["value"])
        # the verdict and, beside it, the figure that decided it, as the run's tags hold them
        assert (row["fit"], row["fit_rule"]) == (run.tags[FIT_TAG], run.tags[FIT_RULE_TAG])
        assert row["fit_rule"].split()[0] in {
            "val_loss_rise", "val_accuracy_drop", "train_skill", "still_improving",
            "error_ratio", "loss_ratio", "gap_accuracy",
        }  # fmt: skip
        if kind == "regression":
            assert row["final_val_mae"] == pytest.approx(history["val_mae"][-1])
            assert row["best_val_loss"] == pytest.approx(min(history["val_loss"]))
        else:
            assert row["final_val_auc"] == pytest.approx(history["val_auc"][-1])
    assert ("accuracy" in json.dumps(rows)) is (kind != "regression")

    text = cli("compare", kind, *stores.args)
    assert text.code == 0, text.err
    lowest = "lowest" if direction == "minimize" else "highest"
    assert f"3 of 3 trials by value (best {metric}, {lowest} first)" in text.out
    where = [text.out.index(r["run_id"]) for r in rows]
    assert where == sorted(where)
    assert ("val_acc" in text.out) is (kind != "regression")

    out = stores.root / "report"
    assert cli("report", kind, "--out", out, *stores.args).code == 0
    assert pd.read_csv(out / TABLE_CSV)["trial"].tolist() == ranked
    md = (out / TABLE_MD).read_text(encoding="utf-8")
    assert f"task: {kind}; objective: {direction} {metric}, scored on" in md
    drawn = "mae" if kind == "regression" else "auc"
    assert (out / f"{drawn}_overlay.png").is_file() and not (out / OVERLAY_PNG).exists()

    landing = find_experiment(stores.tracking_uri, kind)
    assert landing is not None
    assert (landing.metric, landing.ascending) == (f"objective_{metric}", direction == "minimize")
    order = "ASC" if landing.ascending else "DESC"
    listed = client.search_runs(
        [landing.experiment_id], order_by=[f"metrics.`{landing.metric}` {order}"]
    )
    assert [r.info.run_id for r in listed[:3]] == [r["run_id"] for r in rows]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Any:
    """``mlflow server`` on a fresh SQLite store, as ``nnsweep ui`` starts it; its URL."""
    import subprocess

    from nnsweep.ui.server import guarded, server_command, server_env, stop_server, wait_until_up
    from tests._uiproc import free_port

    port = free_port()
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    proc = subprocess.Popen(
        guarded(server_command("127.0.0.1", port)),
        env=server_env(backend),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, url + "/health", timeout=240)
        yield url
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_a_run_on_an_mlflow_server_ends_with_its_sorted_runs_url(
    tmp_path: Path, mlflow_server: str, cli: Callable[..., CliResult]
) -> None:
    table, target = _table(tmp_path, "regression")
    sweep = _sweep(tmp_path, "houses", table, target, None)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ("--storage", storage, "--tracking-uri", mlflow_server)
    result = cli("run", sweep, "--jobs", "1", "-q", "--trials", "2", *args)
    assert result.code == 0, result.err
    experiment = MlflowClient(mlflow_server).get_experiment_by_name("houses")
    assert experiment is not None
    url = (
        f"{mlflow_server}/#/experiments/{experiment.experiment_id}/runs?workflowType="
        "machine_learning&orderByKey=metrics.%60objective_val_mae%60&orderByAsc=true"
    )
    assert f"browse: {url}   export: nnsweep export houses" in result.out
    shown = cli("ui", "--tracking-uri", mlflow_server, "--study", "houses")
    assert shown.code == 0 and f"its UI: {url}" in shown.out
