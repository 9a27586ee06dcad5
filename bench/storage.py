"""Which embedded Optuna storage takes concurrent writers: SQLite files vs Optuna's journal file.

Starts N worker processes on one fresh study (2 and 4 by default) and has them run trials that
write what an nnsweep trial writes (user attributes, one intermediate value per epoch, the
result), with a short sleep standing in for training so the stores see far more contention
than real trials give them. Each storage is opened by :func:`nnsweep.study.storage.open_storage`, as
``nnsweep run`` opens it (SQLite with Optuna's heartbeat thread). Prints, per storage and N:
trials COMPLETE of those wanted, errors (``database is locked`` counted apart), wall seconds.

    .venv/bin/python bench/storage.py                  # sqlite, sqlite?timeout=60, journal
    .venv/bin/python bench/storage.py --workers 4 --trials 200 --only journal
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, versions  # noqa: E402

KINDS = {
    "sqlite": "sqlite:///{dir}/optuna.db",
    "sqlite-timeout60": "sqlite:///{dir}/optuna.db?timeout=60",
    "journal": "journal:///{dir}/optuna.log",
}
EPOCHS = 5


def _worker(url: str, trials: int, pause: float, out: mp.Queue) -> None:
    import optuna

    from nnsweep.study.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10, 10)
        trial.set_user_attr("nnsweep.host", "bench")
        trial.set_user_attr("nnsweep.mlflow_run_id", f"run-{trial.number}")
        for epoch in range(EPOCHS):
            time.sleep(pause / EPOCHS)
            trial.report(-((x - 2) ** 2) + epoch, epoch)
        return -((x - 2) ** 2)

    done = 0
    try:
        study = optuna.load_study(study_name="bench", storage=open_storage(url))
        while done < trials:
            try:
                study.optimize(objective, n_trials=1, catch=())
                done += 1
            except Exception as exc:  # a lost write: what this script counts
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                done += 1
    except Exception:
        errors.append(traceback.format_exc().splitlines()[-1][:160])
    out.put(errors)


def measure(kind: str, workers: int, trials: int, pause: float) -> dict:
    import optuna

    from nnsweep.study.storage import open_storage

    tmp = Path(tempfile.mkdtemp(prefix="nnsweep-storage-"))
    url = KINDS[kind].format(dir=tmp)
    optuna.create_study(study_name="bench", storage=open_storage(url), direction="maximize")
    queue: mp.Queue = mp.Queue()
    per = -(-trials // workers)
    start = time.perf_counter()
    procs = [mp.Process(target=_worker, args=(url, per, pause, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in queue.get()]
    for p in procs:
        p.join()
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    complete = sum(t.state.name == "COMPLETE" for t in study.trials)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "storage": kind,
        "workers": workers,
        "wanted": per * workers,
        "complete": complete,
        "errors": len(errors),
        "locked": sum("database is locked" in e for e in errors),
        "wall_s": round(wall, 1),
        "first_error": errors[0] if errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--trials", type=int, default=120, help="trials per run, all workers")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds of 'training'")
    parser.add_argument("--only", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    args = parser.parse_args()
    print(f"# {machine()}; {versions('optuna', 'sqlalchemy')}")
    for workers in args.workers:
        for kind in args.only:
            print(json.dumps(measure(kind, workers, args.trials, args.pause)), flush=True)


if __name__ == "__main__":
    mp.set_start_method("spawn")
    main()
