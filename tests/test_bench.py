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
