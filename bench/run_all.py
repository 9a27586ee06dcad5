"""Run every benchmark (targets 1-4 of docs/benchmarks.md) and print their figure lines.

    .venv/bin/python bench/run_all.py             # ~45 minutes on 2 CPU cores
    .venv/bin/python bench/run_all.py --skip-fashion

Each script runs in its own process, one after another, so none disturbs another's timing.
The Fashion-MNIST sweep (target 3) runs last: sweeps/fashion.yaml under a hard 30-minute
limit, then ``nnsweep export`` reads its test accuracy from the model card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
NNSWEEP = str(Path(PY).parent / "nnsweep")


def run(cmd: list[str], timeout: float | None = None) -> None:
    print(f"$ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=timeout)


def fashion() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nnsweep-fashion-"))
    stores = [
        "--storage",
        f"sqlite:///{tmp}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{tmp}/mlflow.db",
    ]
    run([NNSWEEP, "run", "sweeps/fashion.yaml", "--quiet", *stores], timeout=1800)
    run([NNSWEEP, "export", "fashion", "--out", str(tmp / "export"), "--force", *stores])
    card = json.loads((tmp / "export" / "model_card.json").read_text())
    print(f"fashion: model card {json.dumps(card.get('test', card), default=str)[:300]}")
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-fashion", action="store_true")
    args = ap.parse_args()
    run([PY, "bench/overhead.py", "--dataset", "mnist_5k", "--repeats", "5"])
    run([PY, "bench/overhead.py", "--dataset", "fashion_mnist", "--repeats", "2"])
    run([PY, "bench/scale.py"])
    run([PY, "bench/peers.py"])
    if not args.skip_fashion:
        fashion()


if __name__ == "__main__":
    main()
