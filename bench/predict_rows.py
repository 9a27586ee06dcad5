"""``nnsweep predict`` on a large CSV: rows/s, wall time and peak memory of the whole process.

    .venv/bin/python bench/predict_rows.py                     # 1,000,000 rows (and 1k, 100k)
    .venv/bin/python bench/predict_rows.py --rows 100000 --sizes 1000
    .venv/bin/python bench/predict_rows.py --model runs/export  # reuse an export folder

Unless ``--model`` names an ``nnsweep export`` folder, a small table model is trained once with
nnsweep itself: a synthetic table (4 numeric and 2 text columns, some values missing, a binary
target) of 3,000 rows, swept with 2 random trials of 3 epochs (``nnsweep run``, Optuna's journal
file and a SQLite MLflow store in a temp folder), then ``nnsweep export --out``. Both are whole
processes.

Then CSV files of rows drawn from the same table (text columns and missing values included,
the target column kept, as a user's file would have it; ``predict`` ignores it) are predicted
with ``nnsweep predict EXPORT ROWS.csv --csv > preds.csv``, one whole process per file size:
by default 1,000 rows (TensorFlow's start-up and the model: the fixed cost), 100,000 and
``--rows``. Each run is timed from its start to its exit (so rows/s includes the start-up) and
its peak RSS is read from GNU ``/usr/bin/time -v`` (else ``getrusage`` of the children, an upper
bound: it includes this script's own RSS when the child was started). The child's stderr is a
pseudo-terminal, as a user's is, so its progress bar is drawn; the last bar line is printed.
The output is checked: a header and one line per row, the rows numbered 0 to N-1 in order, the
table's labels. Peak RSS should stay flat as the rows grow tenfold: ``predict`` streams a CSV in
chunks (:mod:`nnsweep.predict.stream`).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, versions  # noqa: E402

TARGET = "churn"
CITIES = ("Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Aveiro", "Evora", "Leiria")
PLANS = ("basic", "plus", "pro")
TRAIN_ROWS = 3000
MISSING = 0.03  # fraction of each feature column left empty


def table(n: int, seed: int):  # -> pd.DataFrame
    """``n`` synthetic rows: 4 numeric and 2 text features, a few missing, a yes/no target."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    income = np.round(rng.lognormal(10.0, 0.6, n), 2)
    score = np.round(rng.normal(0.0, 1.0, n), 4)
    hours = rng.integers(0, 80, n)
    city = rng.choice(CITIES, n)
    plan = rng.choice(PLANS, n, p=[0.5, 0.3, 0.2])
    logit = (
        0.04 * (age - 50)
        - 0.5 * (np.log(income) - 10.0)
        + 0.8 * score
        + np.where(plan == "pro", -1.0, 0.3)
        + np.where(np.isin(city, CITIES[:3]), 0.5, -0.4)
    )
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {
            "age": age.astype(float),
            "income": income,
            "score": score,
            "hours": hours.astype(float),
            "city": city.astype(object),
            "plan": plan.astype(object),
        }
    )
    holes = rng.random(frame.shape) < MISSING
    frame = frame.mask(holes)
    frame[TARGET] = churn
    return frame


def write_csv(path: Path, n: int, seed: int, block: int = 200_000) -> float:
    """Write ``n`` rows to ``path`` in blocks (bounded memory here too); returns the MiB written."""
    done = 0
    while done < n:
        size = min(block, n - done)
        table(size, seed + done).to_csv(
            path, mode="w" if done == 0 else "a", header=done == 0, index=False
        )
        done += size
    return path.stat().st_size / 2**20


def train_model(folder: Path) -> Path:
    """Sweep the synthetic table with nnsweep (2 trials) and export the best; the export folder."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.csv"
    table(TRAIN_ROWS, seed=0).to_csv(data, index=False)
    sweep = folder / "sweep.yaml"
    spec = {
        "name": "predict_bench",
        "dataset": {"path": str(data), "target": TARGET, "validation": 0.2},
        "trials": 2,
        "seed": 1,
        "sampler": "random",
        "pruner": "none",
        "train": {"epochs": 3, "batch_size": 64},
        "space": {
            "n_layers": {"low": 1, "high": 2},
            "units": {"low": 16, "high": 64, "log": True},
            "activation": ["relu", "tanh"],
            "optimizer": "adam",
            "learning_rate": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
            "dropout": 0.0,
        },
    }
    sweep.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    out = folder / "export"
    env = {
        **os.environ,
        "NNSWEEP_STORAGE": f"journal:///{folder}/optuna.log",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    for cmd in (
        [nnsweep_exe(), "run", str(sweep), "--quiet"],
        [nnsweep_exe(), "export", "predict_bench", "--out", str(out)],
    ):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        print(f"  {' '.join(cmd[1:3])}: {time.perf_counter() - start:.1f} s", flush=True)
    return out


def nnsweep_exe() -> str:
    return str(Path(sys.executable).with_name("nnsweep"))


def _drain(fd: int, tail: list[str]) -> None:
    """Read the child's terminal until it closes, keeping the last progress-bar line."""
    buffer = ""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        buffer = (buffer + chunk.decode("utf-8", "replace"))[-4096:]
    lines = [s.strip() for s in re.split(r"[\r\n]", buffer) if s.strip()]
    tail.extend(lines[-1:])


def run_predict(model: Path, rows_csv: Path, preds: Path) -> dict[str, object]:
    """One ``nnsweep predict MODEL ROWS --csv > preds`` process: wall s, peak RSS MiB, bar line."""
    cmd = [nnsweep_exe(), "predict", str(model), str(rows_csv), "--csv"]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    report = preds.with_suffix(".time.txt")
    if timer:
        cmd = [timer, "-v", "-o", str(report), *cmd]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    master, slave = pty.openpty()  # stderr a terminal, as a user's: the progress bar is drawn
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # else 0 wide
    tail: list[str] = []
    reader = threading.Thread(target=_drain, args=(master, tail), daemon=True)
    reader.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    with preds.open("wb") as out:
        code = subprocess.run(cmd, stdout=out, stderr=slave, env=env, check=False).returncode
    wall = time.perf_counter() - start
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}: {tail[-1:] or ''}")
    peak_kib: float
    if timer:
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
        peak_kib = float(found.group(1)) if found else float("nan")
    else:  # an upper bound: Linux folds this script's own RSS at fork into the child's on exec
        peak_kib = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return {"wall": wall, "peak_mib": peak_kib / 1024, "bar": tail[-1] if tail else "(none)"}


def check_output(preds: Path, n: int) -> None:
    """The output holds a header and ``n`` rows numbered 0..n-1 in order."""
    import numpy as np
    import pandas as pd

    got = pd.read_csv(preds, usecols=["row", "prediction"])
    if len(got) != n or not np.array_equal(got["row"].to_numpy(), np.arange(n)):
        raise SystemExit(f"{preds}: {len(got)} rows (wanted {n}, numbered 0..{n - 1} in order)")
    if not got["prediction"].isin(["yes", "no"]).all():
        raise SystemExit(f"{preds}: predictions other than the table's labels yes/no")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large file")
    parser.add_argument(
        "--sizes",
        default="1000,100000",
        help="smaller files predicted first, comma-separated (the fixed cost, the memory bound)",
    )
    parser.add_argument("--model", type=Path, help="an nnsweep export folder to reuse")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | {args.rows})

    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    tmp = Path(tempfile.mkdtemp(prefix="nnsweep-predict-rows-"))
    try:
        if args.model:
            model = args.model.resolve()
            print(f"model: {model} (given)")
        else:
            print("training the model once: 2 trials x 3 epochs on 3,000 synthetic rows")
            model = train_model(tmp / "sweep")
        print(f"{'rows':>10}  {'CSV MiB':>8}  {'wall s':>7}  {'rows/s':>9}  {'peak RSS MiB':>12}")
        for n in sizes:
            rows_csv = tmp / f"rows_{n}.csv"
            mib = write_csv(rows_csv, n, seed=10_000)
            preds = tmp / f"preds_{n}.csv"
            got = run_predict(model, rows_csv, preds)
            check_output(preds, n)
            print(
                f"{n:>10,}  {mib:>8.1f}  {got['wall']:>7.1f}  {n / got['wall']:>9,.0f}  "
                f"{got['peak_mib']:>12.0f}",
                flush=True,
            )
            print(f"{'':>10}  bar: {got['bar']}", flush=True)
            rows_csv.unlink()
            preds.unlink()
        print(f"after: {machine().rsplit(', ', 1)[-1]}")
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
