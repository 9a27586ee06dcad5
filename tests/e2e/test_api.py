"""The Python API (``from nnsweep import …``): the README's example runs as written, names
import lazily, and bad input raises the CLI's error types with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import nnsweep
from nnsweep import SpecError, spec_from_dict
from tests.conftest import CliResult

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The one ```python block of the README's "Python API" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the Python API section holds one python example"
    return blocks[0]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with the repository's sweep files and no store settings."""
    shutil.copytree(ROOT / "sweeps", tmp_path / "sweeps")
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "NNSWEEP_STORAGE", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.slow
def test_readme_example_runs_and_agrees_with_the_cli(
    project: Path, cli: Callable[..., CliResult]
) -> None:
    out = io.StringIO()
    namespace: dict[str, object] = {"__name__": "readme_example"}
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), "README.md#python-api", "exec"), namespace)
    result, best = namespace["result"], namespace["best"]
    assert isinstance(result, nnsweep.SweepResult) and isinstance(best, dict)
    assert (result.study_name, result.n_complete, result.ran) == ("api-demo", 3, {"COMPLETE": 3})
    assert result.best == best
    assert (project / "mlflow.db").is_file()  # the CLI's default stores, in the working dir
    assert f"best trial #{best['number']}: {best['value']:.4f}" in out.getvalue()

    shown = cli("best", "api-demo", "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out) == best
    assert set(best["params"]) >= {"n_layers", "units_0", "learning_rate", "epochs"}

    again = nnsweep.run_sweep(namespace["spec"])  # type: ignore[arg-type]
    assert again.ran == {} and again.n_complete == 3  # resumed: the target was reached


def test_public_api_imports_lazily() -> None:
    code = (
        "import sys, nnsweep\n"
        "heavy = {'optuna', 'mlflow', 'tensorflow', 'keras', 'pydantic'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "from nnsweep import best_trial, load_spec, run_sweep, spec_from_dict, SweepSpec\n"
        "for name in nnsweep.__all__:\n"
        "    getattr(nnsweep, name)\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_spec_without_a_budget_is_left_to_the_zero_config_default() -> None:
    """No trials/timeout is not an error: the pre-flight fills in the default budget once the
    data's size is known (nnsweep.spec.defaults)."""
    spec = spec_from_dict({"name": "x", "dataset": "mnist_5k"})
    assert spec.trials is None and spec.timeout is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "dataset": "mnist_5k", "trials": 0}, "trials"),
        ({"name": "a b", "dataset": "mnist_5k", "trials": 1}, "name: 'a b' is not a usable"),
        ({"name": "x", "dataset": "nope", "trials": 1}, "dataset"),
        (
            {
                "name": "x",
                "dataset": "mnist_5k",
                "trials": 1,
                "space": {"units": {"low": 9, "high": 1}},
            },
            "space.units",
        ),
        ({"name": "x", "dataset": "mnist_5k", "trials": 1, "bogus": 1}, "bogus"),
        (["name", "x"], "a sweep spec is a mapping"),
    ],
)
def test_spec_from_dict_refuses_bad_specs(data: object, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        spec_from_dict(data)  # type: ignore[arg-type]


def test_spec_from_dict_equals_the_sweep_file(project: Path) -> None:
    from nnsweep import load_spec

    from_file = load_spec("sweeps/quickstart.yaml")
    assert spec_from_dict(from_file.model_dump(mode="json")) == from_file


def test_run_sweep_refuses_bad_input_and_writes_nothing(project: Path) -> None:
    with pytest.raises(SpecError, match="not int"):
        nnsweep.run_sweep(123)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="sweep file not found"):
        nnsweep.run_sweep("sweeps/missing.yaml")
    with pytest.raises(nnsweep.StudyNotFoundError):
        nnsweep.best_trial("never-ran", storage=f"sqlite:///{project / 'optuna.db'}")
    leftovers = {p.name for p in project.iterdir()} - {"sweeps"}
    assert leftovers <= {"optuna.db"}  # an empty Optuna file at most: no MLflow store, no run


def test_run_sweep_pins_the_default_stores_to_the_folder_it_was_called_in(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook that changes folder between two sweeps: MLflow keeps a store per URI for the
    process, the journal opens its file by name, so a relative default would split a study."""
    import nnsweep.sweep.prepare
    import nnsweep.sweep.run

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(
        nnsweep.sweep.prepare,
        "preflight",
        lambda spec, **kw: seen.append((kw["storage_url"], kw["tracking_uri"])),
    )
    monkeypatch.setattr(nnsweep.sweep.run, "run_sweep", lambda prepared, **kw: None)
    other = project / "elsewhere"
    other.mkdir()
    nnsweep.run_sweep("sweeps/quickstart.yaml")
    monkeypatch.chdir(other)
    nnsweep.run_sweep(project / "sweeps" / "quickstart.yaml")
    assert seen == [
        (f"journal:///{project}/optuna.log", f"sqlite:///{project}/mlflow.db"),
        (f"journal:///{other}/optuna.log", f"sqlite:///{other}/mlflow.db"),
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///mlflow.db", "sqlite:///{cwd}/mlflow.db"),
        ("sqlite:///runs/m.db?timeout=60", "sqlite:///{cwd}/runs/m.db?timeout=60"),
        ("journal:///optuna.log", "journal:///{cwd}/optuna.log"),
        ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
        ("journal:////abs/optuna.log", "journal:////abs/optuna.log"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("postgresql+psycopg://u:pw@host/db", "postgresql+psycopg://u:pw@host/db"),
    ],
)
def test_pinned_makes_only_relative_local_files_absolute(
    url: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nnsweep.stores import pinned

    monkeypatch.chdir(tmp_path)
    assert pinned(url) == expected.format(cwd=tmp_path.as_posix())
