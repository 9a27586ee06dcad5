"""Target 2: nnsweep vs Optuna+MLflowCallback and KerasTuner, same space, data and budget.

Runs each contender in its own fresh process, one after another, and times the whole process
(Python start, imports, data, search, tracking): Optuna TPE + MLflowCallback, KerasTuner
RandomSearch, KerasTuner Hyperband, then ``nnsweep run bench/peers.yaml`` (the real CLI with
its defaults: ``--jobs auto``, the default stores in a fresh folder, full tracking). Space,
data split and budget: see bench/space.py and bench/peers.yaml. The verdict line gives the
ratio to the fastest peer, the best validation accuracies, the usable cores and the load.

    .venv/bin/python bench/peers.py            # the four runs, ~5 minutes on 2 cores
    .venv/bin/python bench/peers.py --only nnsweep nnsweep-jobs1 --fastest-peer 53.4 \
        --best-peer 0.9425

``nnsweep`` is the budget of the peers: 20 trials, pruned ones included
(``trials_count: all``, Optuna's ``n_trials``), with median pruning. ``nnsweep-complete``
(only when asked for) runs until 20 trials are COMPLETE, pruned ones on top: more work than
any peer, for the accuracy a longer sweep buys. ``nnsweep-jobs1`` is the single process of
``--jobs 1`` (the default before ``--jobs auto``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH, ROOT, load, machine, stores, versions  # noqa: E402
from nnsweep.train.devices import available_cores  # noqa: E402

RATIO_TARGET = 0.75  # nnsweep's wall time / the fastest peer's
ACCURACY_SLACK = 0.005  # nnsweep's best val_accuracy may trail the best peer's by this much

PY = sys.executable
CONTENDERS = {
    "optuna": [PY, str(BENCH / "peer_optuna_mlflow.py")],
    "kt-random": [PY, str(BENCH / "peer_kerastuner.py"), "--tuner", "random"],
    "kt-hyperband": [PY, str(BENCH / "peer_kerastuner.py"), "--tuner", "hyperband"],
}
OURS = ("nnsweep", "nnsweep-complete", "nnsweep-jobs1")


def run_peer(name: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(CONTENDERS[name], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    return result


def run_nnsweep(count: str = "all", jobs: str | None = None) -> dict:
    """``nnsweep run bench/peers.yaml`` with its defaults (``--jobs auto``, the default stores
    in a fresh folder), or ``--jobs N`` when asked for."""
    import optuna

    tmp, _, _ = stores("peers")
    sweep = BENCH / "peers.yaml"
    if count != "all":
        sweep = Path(tmp) / "peers.yaml"
        text = (BENCH / "peers.yaml").read_text()
        sweep.write_text(text.replace("trials_count: all", f"trials_count: {count}"))
    cmd = [str(Path(PY).parent / "nnsweep"), "run", str(sweep), "--quiet"]
    if jobs is not None:
        cmd += ["--jobs", jobs]
    env = {
        k: v for k, v in os.environ.items() if k not in ("NNSWEEP_STORAGE", "MLFLOW_TRACKING_URI")
    }
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"nnsweep failed:\n{proc.stderr[-3000:]}")
    workers = re.search(r"\((\d+) workers?\)", proc.stdout)
    from nnsweep.stores import resolve_storage

    storage = resolve_storage(None, f"sqlite:///{tmp}/mlflow.db")
    study = optuna.load_study(study_name="bench-peers", storage=_open(storage))
    states = [t.state.name for t in study.trials]
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    best = study.best_value
    shutil.rmtree(tmp, ignore_errors=True)
    what = "20 trials (pruned count)" if count == "all" else "20 COMPLETE trials (pruned on top)"
    return {
        "peer": f"nnsweep, {what}, {workers.group(1) if workers else 1} worker(s)"
        + (f" (--jobs {jobs})" if jobs else " (defaults)"),
        "trials": len(states),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "epochs_trained": epochs,
        "best_val_accuracy": best,
        "wall_seconds": wall,
    }


def _open(url: str) -> object:
    from nnsweep.study.storage import open_storage

    return open_storage(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=[*CONTENDERS, *OURS])
    ap.add_argument(
        "--fastest-peer", type=float, help="seconds of the fastest peer from an earlier run"
    )
    ap.add_argument("--best-peer", type=float, help="best peer val_accuracy from that run")
    args = ap.parse_args()
    names = args.only or [*CONTENDERS, "nnsweep"]
    dists = (
        "nnsweep",
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "optuna",
        "mlflow",
        "optuna-integration",
        "keras-tuner",
    )
    print(f"# {machine()}; {versions(*dists)}")
    print("# data mnist_5k: 3,600 train / 400 val (seed 42); 20 trials x 10 epochs, batch 128")
    results = {}
    for name in names:
        if name in OURS:
            res = run_nnsweep(
                "complete" if name == "nnsweep-complete" else "all",
                "1" if name == "nnsweep-jobs1" else None,
            )
        else:
            res = run_peer(name)
        results[name] = res
        extra = "".join(
            f", {k} {res[k]}" for k in ("complete", "pruned", "epochs_trained") if k in res
        )
        print(
            f"{res['peer']}: {res['wall_seconds']:.1f} s, best val_accuracy "
            f"{res['best_val_accuracy']:.4f}, trials {res['trials']}{extra}",
            flush=True,
        )
    peers = [r for k, r in results.items() if k in CONTENDERS]
    if not peers and not (args.fastest_peer and args.best_peer):
        return
    fastest = min([r["wall_seconds"] for r in peers] + [args.fastest_peer or float("inf")])
    best = max([r["best_val_accuracy"] for r in peers] + [args.best_peer or 0.0])
    for name in OURS:
        if name not in results:
            continue
        me = results[name]
        ratio = me["wall_seconds"] / fastest
        ok = ratio <= RATIO_TARGET and me["best_val_accuracy"] >= best - ACCURACY_SLACK
        print(
            f"peers [{me['peer']}]: {me['wall_seconds']:.1f} s / fastest peer {fastest:.1f} s = "
            f"ratio {ratio:.2f} (target <= {RATIO_TARGET}); best val_accuracy "
            f"{me['best_val_accuracy']:.4f} vs best peer {best:.4f} (target >= best peer - "
            f"{ACCURACY_SLACK}) {'MET' if ok else 'MISSED'}; {available_cores()} cores, {load()}"
        )


if __name__ == "__main__":
    main()
