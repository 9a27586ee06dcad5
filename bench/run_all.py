"""Run every benchmark of docs/benchmarks.md and print their figure lines.

    .venv/bin/python bench/run_all.py             # ~4 hours on 2 CPU cores
    .venv/bin/python bench/run_all.py --skip-fashion --skip-tables

Each script runs in its own process, one after another, so none disturbs another's timing.
The Fashion-MNIST sweep (target 3, bench/fashion.py: sweeps/fashion.yaml, then
``nnsweep export --retrain`` and its model card's test accuracy) runs last.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable


def run(cmd: list[str]) -> None:
    print(f"$ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-fashion", action="store_true")
    ap.add_argument("--skip-tables", action="store_true", help="skip the 2-hour tables bench")
    args = ap.parse_args()
    run([PY, "bench/overhead.py", "--dataset", "mnist_5k", "--repeats", "5"])
    run([PY, "bench/overhead.py", "--dataset", "fashion_mnist", "--repeats", "2"])
    run([PY, "bench/scale.py"])
    run([PY, "bench/peers.py"])
    run([PY, "bench/predict_rows.py"])
    run([PY, "bench/warmstart.py"])
    if not args.skip_tables:
        run([PY, "bench/tables.py"])  # zero-config vs gradient boosting and plain MLPs
        run([PY, "bench/ablation.py"])  # each technique's effect, on validation rows
    if not args.skip_fashion:
        run([PY, "bench/fashion.py"])


if __name__ == "__main__":
    main()
