"""One pass through a run: each process loads its data once and checks each store once.

Every process of ``nnsweep run`` (the single process, the ``--jobs`` parent and each worker)
is counted from the outside: a ``sitecustomize`` on ``PYTHONPATH`` wraps the data loader and
the store checks before nnsweep is imported, and appends one line per call to a file.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

COUNTER = """
import os
import nnsweep.data.load as load
import nnsweep.stores as stores

OUT = os.environ["NNSWEEP_TEST_COUNT_FILE"]


def counted(module, name):
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {name}\\n")
        return real(*args, **kwargs)

    setattr(module, name, wrapper)


counted(load, "load_dataset")
counted(stores, "check_storage")
counted(stores, "check_tracking_uri")
"""


def _count(tmp_path: Path, sweep: Path, *args: str) -> dict[int, collections.Counter[str]]:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(COUNTER, encoding="utf-8")
    out = tmp_path / "calls.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        "NNSWEEP_TEST_COUNT_FILE": str(out),
    }
    done = subprocess.run(
        [sys.executable, "-m", "nnsweep", "run", str(sweep), "--quiet", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    per_process: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in out.read_text(encoding="utf-8").splitlines():
        pid, name = line.split()
        per_process[int(pid)][name] += 1
    return per_process


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_each_process_loads_its_data_once_and_checks_each_store_once(
    tmp_path: Path, write_sweep: Callable[..., Path], jobs: str
) -> None:
    sweep = write_sweep("onepass", trials=2, train={"epochs": 1})  # calls, not training, count
    storage = f"journal:///{tmp_path / 'optuna.log'}"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    calls = _count(
        tmp_path, sweep, "--jobs", jobs, "--storage", storage, "--tracking-uri", tracking
    )
    assert len(calls) == (1 if jobs == "1" else 3)  # the parent and its two workers
    for pid, counts in calls.items():
        assert counts == {"load_dataset": 1, "check_storage": 1, "check_tracking_uri": 1}, (
            pid,
            dict(counts),
        )
