"""The benchmark scripts stay runnable: each parses its arguments (their runs take minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted(p for p in Path("bench").glob("*.py") if not p.name.startswith("_"))
SCRIPTS = [p for p in SCRIPTS if "argparse" in p.read_text()]


def test_every_target_has_a_script() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"overhead", "peers", "scale", "fashion", "run_all"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_help(script: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def test_versions_name_the_tensorflow_that_is_installed_and_machine_gives_cores_and_load() -> None:
    from importlib import metadata

    from bench._common import machine, versions

    shown = versions()
    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            assert f"{dist} {metadata.version(dist)}" in shown
        except metadata.PackageNotFoundError:
            assert f"{dist} " not in shown
    assert "usable)" in machine() and "load " in machine()


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_storage_bench_counts_every_trial_of_concurrent_writers(kind: str) -> None:
    from bench.storage import measure

    row = measure(kind, workers=2, trials=6, pause=0.0)
    assert row["wanted"] == 6 and row["complete"] == 6 and row["errors"] == 0, row
