"""Target 4: RSS growth over 50 trials, ``nnsweep --help`` time, ``nnsweep status`` on 1,000 trials.

    .venv/bin/python bench/scale.py                 # all three
    .venv/bin/python bench/scale.py --only memory   # or: help, status

memory: ``run_sweep(bench/scale.yaml)`` in this process (50 trials, full tracking, temporary
SQLite stores); the resident set size is read after every trial. Growth is measured from
the end of trial 1 (which also pays one-time imports: matplotlib, MLflow's model code) to the
end of trial 50.
help / status: the installed ``nnsweep`` console script in a fresh process, median of 5 runs.
status reads a SQLite study of 1,000 finished trials (10 epochs of intermediate values,
nnsweep's user attributes), written here with ``Study.add_trials``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH, machine, stores, versions  # noqa: E402

NNSWEEP = str(Path(sys.executable).parent / "nnsweep")


def timed(cmd: list[str], repeats: int = 5) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def bench_help() -> None:
    times = timed([NNSWEEP, "--help"])
    med = statistics.median(times)
    print(
        f"help: `nnsweep --help` median {med:.2f} s of 5 (min {min(times):.2f}); "
        f"target <= 1.0 s {'MET' if med <= 1.0 else 'MISSED'}"
    )


def bench_status(n: int = 1000) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tmp, storage, _ = stores("status")
    study = optuna.create_study(study_name="bench-status", storage=storage, direction="maximize")
    study.set_user_attr("nnsweep.objective", "val_accuracy")
    dists = {
        "n_layers": IntDistribution(1, 3),
        "units_0": IntDistribution(32, 512, log=True),
        "activation": CategoricalDistribution(["relu", "tanh", "sigmoid", "elu", "selu"]),
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
    }
    states = [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    trials = []
    for i in range(n):
        state = states[i % 4]
        params = {
            "n_layers": 1 + i % 3,
            "units_0": 32 + i % 480,
            "activation": ["relu", "tanh", "sigmoid", "elu", "selu"][i % 5],
            "learning_rate": 10 ** (-4 + 3 * (i % 97) / 97),
        }
        curve = {e: 0.5 + 0.4 * e / 10 + (i % 13) / 1000 for e in range(1, 11)}
        trials.append(
            create_trial(
                state=state,
                params=params,
                distributions=dists,
                value=max(curve.values()) if state == TrialState.COMPLETE else None,
                intermediate_values=curve,
                user_attrs={
                    "nnsweep.params": params,
                    "nnsweep.host": "bench",
                    "nnsweep.pid": 1,
                    "nnsweep.mlflow_run_id": f"{i:032x}",
                },
            )
        )
    start = time.perf_counter()
    study.add_trials(trials)
    print(f"# wrote {n} trials in {time.perf_counter() - start:.1f} s", flush=True)
    times = timed([NNSWEEP, "status", "bench-status", "--storage", storage])
    med = statistics.median(times)
    print(
        f"status: `nnsweep status bench-status` on {n} trials median {med:.2f} s of 5 "
        f"(min {min(times):.2f}); target <= 2.0 s {'MET' if med <= 2.0 else 'MISSED'}"
    )
    shutil.rmtree(tmp, ignore_errors=True)


def bench_memory() -> None:
    import psutil

    from nnsweep.spec.config import load_spec
    from nnsweep.sweep.prepare import preflight
    from nnsweep.sweep.run import run_sweep

    proc = psutil.Process()
    rss: list[float] = []

    def record(study, trial) -> None:
        rss.append(proc.memory_info().rss / 2**20)
        if len(rss) in (1, 10, 20, 30, 40, 50):
            print(f"  after trial {len(rss)}: RSS {rss[-1]:.0f} MiB", flush=True)

    tmp, storage, tracking = stores("memory")
    spec = load_spec(BENCH / "scale.yaml")
    start = time.perf_counter()
    res = run_sweep(preflight(spec, storage_url=storage, tracking_uri=tracking), hooks=[record])
    wall = time.perf_counter() - start
    growth = rss[-1] - rss[0]
    print(
        f"memory: {len(rss)} trials ({res.ran}) in {wall:.0f} s; RSS {rss[0]:.0f} MiB after "
        f"trial 1 -> {rss[-1]:.0f} MiB after trial {len(rss)}: growth {growth:.0f} MiB "
        f"(from trial 10: {rss[-1] - rss[9]:.0f} MiB); target <= 150 MB "
        f"{'MET' if growth * 1.048576 <= 150 else 'MISSED'}"
    )
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=["help", "status", "memory"])
    args = ap.parse_args()
    print(f"# {machine()}; {versions()}")
    for name in args.only or ["help", "status", "memory"]:
        {"help": bench_help, "status": bench_status, "memory": bench_memory}[name]()


if __name__ == "__main__":
    main()
