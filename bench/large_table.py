"""Zero-config on a 30,000-row table with text columns: sweep + export wall time (target 15 min).

    .venv/bin/python bench/large_table.py [--rows 30000] [--seed 0]

Writes a census-like table (6 numeric and 8 text columns, a few missing cells, a binary
target that depends on both kinds of column) as ``train.csv`` under a temporary folder, then
runs exactly what a user runs, as whole processes: ``nnsweep run train.csv --target income``
and ``nnsweep export``. Prints each command's wall time, the budget and validation the run
chose, and the card's test accuracy beside gradient boosting's (one read of the drawn test
split, after every choice). Stores are temporary; nothing touches the repository's stores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _common import machine  # noqa: E402

TEXT = {
    "workclass": ["private", "self-emp", "gov", "never-worked", "without-pay"],
    "education": ["hs", "some-college", "bachelors", "masters", "doctorate", "assoc", "11th"],
    "marital": ["married", "never", "divorced", "separated", "widowed"],
    "occupation": [f"occ{i}" for i in range(14)],
    "relationship": ["husband", "wife", "own-child", "unmarried", "other"],
    "race": ["a", "b", "c", "d", "e"],
    "sex": ["f", "m"],
    "country": [f"c{i}" for i in range(40)],
}


def write_table(path: Path, rows: int, seed: int) -> None:
    """A table whose target depends on numbers and categories, with ~2 % missing cells."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(17, 90, rows),
            "fnlwgt": rng.lognormal(12, 0.5, rows).round(),
            "education_num": rng.integers(1, 17, rows),
            "capital_gain": np.where(rng.random(rows) < 0.08, rng.lognormal(8, 1, rows), 0),
            "capital_loss": np.where(rng.random(rows) < 0.05, rng.lognormal(7, 0.5, rows), 0),
            "hours": rng.normal(40, 12, rows).clip(1, 99).round(),
        }
    )
    for name, values in TEXT.items():
        frame[name] = rng.choice(values, rows)
    score = (
        0.04 * (frame["age"] - 40)
        + 0.25 * (frame["education_num"] - 9)
        + 0.03 * (frame["hours"] - 40)
        + 0.8 * (frame["capital_gain"] > 0)
        + frame["marital"].map({"married": 1.2}).fillna(-0.4)
        + frame["occupation"].map({f"occ{i}": (i % 5 - 2) * 0.3 for i in range(14)})
        + rng.normal(0, 1.0, rows)
    )
    frame["income"] = np.where(score > 0.5, ">50k", "<=50k")
    for name in ("workclass", "occupation", "country", "hours"):
        frame.loc[rng.random(rows) < 0.02, name] = None
    frame.to_csv(path, index=False)


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    shown = [line for line in done.stdout.splitlines() if not line.startswith("trial ")]
    print("\n".join(f"    {line}" for line in shown[-14:]))
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(machine(), flush=True)
    exe = str(Path(sys.executable).with_name("nnsweep"))
    with tempfile.TemporaryDirectory(prefix="nnsweep-large-") as tmp:
        folder = Path(tmp)
        write_table(folder / "train.csv", args.rows, args.seed)
        env = {
            **os.environ,
            "NNSWEEP_STORAGE": f"journal:///{folder}/optuna.log",
            "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
        }
        print(f"$ nnsweep run train.csv --target income   ({args.rows:,} rows, 6 numeric, 8 text)")
        run_s = timed([exe, "run", "train.csv", "--target", "income", "--quiet"], env, folder)
        print("$ nnsweep export train --out export")
        export_s = timed([exe, "export", "train", "--out", "export"], env, folder)
        card = json.loads((folder / "export" / "model_card.json").read_text(encoding="utf-8"))
        test, gbm = card["test"], card.get("gradient_boosting") or {}
        gbm_test = (gbm.get("test") or {}).get("accuracy")
        print(
            f"sweep {run_s:.0f} s + export {export_s:.0f} s = {(run_s + export_s) / 60:.1f} min "
            f"(target 15 min); test accuracy {test['accuracy']:.4f} on {test['n']:,} rows, "
            f"gradient boosting {gbm_test if gbm_test is None else round(gbm_test, 4)}; "
            f"{card['validation'].get('trials')} trials"
        )
    print(machine(), flush=True)


if __name__ == "__main__":
    main()
