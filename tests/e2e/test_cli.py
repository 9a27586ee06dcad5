"""End to end through the CLI: real Keras training, real SQLite Optuna storage and MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]


def _runs(stores: Stores, experiment: str = "tiny") -> list:
    client = MlflowClient(stores.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow
def test_run_logs_one_child_per_trial_and_resumes_without_duplicates(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    sweep = write_sweep()
    first = cli("run", sweep, *stores.args, "--quiet")
    assert first.code == 0, first.err
    assert "2 COMPLETE in total" in first.out

    client = MlflowClient(stores.tracking_uri)
    runs = _runs(stores)
    parents = [r for r in runs if r.data.tags.get("nnsweep.role") == "study"]
    children = [r for r in runs if r.data.tags.get("nnsweep.role") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    assert client.get_experiment_by_name("tiny").tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["nnsweep.state"] == "COMPLETE"
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.tags["nnsweep.study"] == "tiny"
        assert {
            "n_layers",
            "units_0",
            "activation",
            "optimizer",
            "learning_rate",
            "batch_size",
            "dropout",
            "epochs",
        } <= set(child.data.params)
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = client.get_metric_history(child.info.run_id, metric)
            assert [m.step for m in history] == [1, 2]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert "nnsweep.best.trial" in parent.data.tags
    assert "sweep.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    again = cli("run", sweep, *stores.args, "--quiet")
    assert again.code == 0, again.err
    assert "already has its target of 2 trials (2 COMPLETE)" in again.out
    assert len(_runs(stores)) == 3

    more = cli("run", sweep, *stores.args, "--quiet", "--trials", "3")
    assert more.code == 0, more.err
    runs = _runs(stores)
    trial_tags = Counter(
        r.data.tags["nnsweep.trial"] for r in runs if r.data.tags.get("nnsweep.role") == "trial"
    )
    assert sorted(trial_tags) == ["0", "1", "2"] and set(trial_tags.values()) == {1}
    assert sum(r.data.tags.get("nnsweep.role") == "study" for r in runs) == 2

    status = cli("status", "tiny", *stores.args, "--json")
    assert status.code == 0, status.err
    summary = json.loads(status.out)
    assert summary["states"]["COMPLETE"] == 3
    import optuna  # the best trial as Optuna itself picks it, not just any trial number

    top = optuna.load_study(study_name="tiny", storage=stores.storage).best_trial
    assert summary["best"] == {"number": top.number, "value": pytest.approx(top.value)}

    best = cli("best", "tiny", *stores.args, "--json")
    info = json.loads(best.out)
    assert set(info) == {"number", "value", "params", "run_id"}
    assert info["run_id"] in {r.info.run_id for r in runs}
    assert info["params"]["epochs"] == 2

    table = cli("status", *stores.args)
    assert table.code == 0 and "tiny" in table.out


BAD_INPUT = [
    ("unknown activation", {"space": {"activation": ["relux"]}}, [], "space.activation"),
    ("impossible range", {"space": {"units": {"low": 64, "high": 8}}}, [], "low <= high"),
    (
        "missing dataset file",
        {"dataset": {"name": "mnist"}},
        ["--data-path", "/no/such.npz"],
        "no such file or folder",
    ),
    (
        "unreachable storage",
        {},
        ["--storage", "postgresql+psycopg://u:pw1234@127.0.0.1:1/x"],
        "cannot connect",
    ),
    ("missing storage folder", {}, ["--storage", "sqlite:////no/such/dir/o.db"], "does not exist"),
    (
        "missing tracking folder",
        {},
        ["--tracking-uri", "sqlite:////no/such/dir/m.db"],
        "does not exist",
    ),
]


@pytest.mark.parametrize(
    ("case", "changes", "extra", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    stores: Stores,
    write_sweep: Callable[..., Path],
    cli: Cli,
    case: str,
    changes: dict,
    extra: list[str],
    message: str,
) -> None:
    sweep = write_sweep(**changes)
    args = [*stores.args, *extra]  # later flags win
    result = cli("run", sweep, *args)
    assert result.code == 2, (case, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nnsweep: error: "), result.err
    assert message in lines[0]
    assert "pw1234" not in result.err
    assert not (stores.root / "optuna.db").exists()
    assert not (stores.root / "mlflow.db").exists()


def test_status_of_unknown_study_exits_2(stores: Stores, cli: Cli) -> None:
    result = cli("best", "ghost", *stores.args)
    assert result.code == 2 and "no study 'ghost'" in result.err


def test_usage_error_exits_2(cli: Cli) -> None:
    assert cli("run").code == 2
    assert cli("run", "sweeps/quickstart.yaml", "--trials", "0").code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "Missing argument 'SWEEP|DATA'"),
        (["run", "x.yaml", "--no-such-flag"], "No such option: --no-such-flag"),
        (["status", "--json", "a", "b"], "Got unexpected extra argument(s) (b)"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
    ],
)
def test_usage_errors_show_the_usage_and_exit_2(cli: Cli, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.code == 2
    assert "Usage: nnsweep" in result.err and f"Error: {message}" in result.err
    assert not result.out


def test_typer_errors_keep_the_contract_that_main_relies_on() -> None:
    """main() maps Typer's parsing errors by public attributes only: fails if Typer changes."""
    import typer

    from nnsweep.cli.main import show_usage_error

    error = typer.BadParameter("must be positive", param_hint="'--trials'")
    assert isinstance(error, typer.TyperException) and error.exit_code == 2
    assert callable(error.show)
    assert show_usage_error(error) == 2


@pytest.mark.parametrize("command", ["run", "status", "best", "ui"])
def test_every_command_has_help(cli: Cli, command: str) -> None:
    result = cli(command, "--help")
    assert result.code == 0 and "Usage:" in result.out and len(result.out.splitlines()) > 4


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from nnsweep.cli.main import main; rc = main(['--help']); "
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'optuna') if m in sys.modules]; "
        "print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nnsweep", "--help"], capture_output=True, text=True, check=True
    )
    assert "Usage: nnsweep" in out.stdout


def test_version_flag_prints_the_installed_version(cli: Cli) -> None:
    from importlib.metadata import version

    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"nnsweep {version('nnsweep')}"


def test_every_registered_command_has_help_text() -> None:
    import typer

    from nnsweep.cli.main import app

    group = typer.main.get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert names == sorted(
        ["run", "status", "best", "report", "compare", "ui", "dashboard", "export", "predict"]
    )
    for name in names:
        assert (group.commands[name].help or "").strip(), name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["it's", "a b", "../up", "-flag", "x" * 101, "é"])
def test_study_name_follows_the_sweep_name_rule_and_nothing_is_written(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli, name: str
) -> None:
    result = cli("run", write_sweep(), *stores.args, "--study", name)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnsweep: error: --study: ")
    assert "not a usable study name" in lines[0] and len(lines[0]) < 200
    assert not (stores.root / "optuna.db").exists()
    assert not (stores.root / "mlflow.db").exists()


def test_signals_interrupt_inside_the_block_and_are_restored_after() -> None:
    import os
    import signal

    from nnsweep._proc import interrupt_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), interrupt_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_resume_refuses_incomparable_settings_and_records_the_allowed_changes(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli
) -> None:
    import optuna

    from nnsweep.ui.server import find_experiment

    first = {"name": "cmp", "trials": 1, "objective": "val_loss", "train": {"epochs": 1}}
    sweep = write_sweep(**first)
    assert cli("run", sweep, *stores.args, "--quiet").code == 0

    def stored() -> tuple[int, int]:
        study = optuna.load_study(study_name="cmp", storage=stores.storage)
        return len(study.trials), len(_runs(stores, "cmp"))

    before = stored()
    seed = cli("run", sweep, *stores.args, "--quiet", "--seed", "7")
    assert seed.code == 2, seed.err
    assert "seed 1 (now 7)" in seed.err and "--study NEW_NAME" in seed.err
    split = write_sweep(**first, dataset={"name": "mnist_5k", "validation": 0.2})
    moved = cli("run", split, *stores.args, "--quiet")
    assert moved.code == 2 and "dataset.validation 0.1 (now 0.2)" in moved.err
    assert stored() == before  # no trial, no run

    sweep = write_sweep(**first)
    more = cli("run", sweep, *stores.args, "--quiet", "--trials", "2")
    assert more.code == 0, more.err
    assert stored() == (2, 4)  # one more trial: its run and a parent run
    client = MlflowClient(stores.tracking_uri)
    parents = sorted(
        (r for r in _runs(stores, "cmp") if r.data.tags.get("nnsweep.role") == "study"),
        key=lambda r: r.info.start_time,
    )
    assert "nnsweep.changes" not in parents[0].data.tags
    assert parents[1].data.tags["nnsweep.changes"] == "trials 1 → 2"
    assert parents[1].data.params["objective_metric"] == "val_loss"
    assert parents[1].data.params["objective_reduce"] == "best"
    local = client.download_artifacts(parents[1].info.run_id, "spec.json", str(stores.root))
    spec = json.loads(Path(local).read_text(encoding="utf-8"))
    assert spec["trials"] == 2 and spec["seed"] == 1
    landing = find_experiment(stores.tracking_uri, "cmp")
    assert landing is not None
    # the runs table sorted by the value each trial was scored with, lowest val_loss first
    assert (landing.metric, landing.ascending) == ("objective_val_loss", True)
