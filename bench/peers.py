"""Target 2: nnsweep vs Optuna+MLflowCallback and KerasTuner, same space, data and budget.

Runs each contender in its own fresh process, one after another, and times the whole process
(Python start, imports, data, search, tracking): Optuna TPE + MLflowCallback, KerasTuner
RandomSearch, KerasTuner Hyperband, then ``nnsweep run bench/peers.yaml`` (the real CLI,
full tracking, temporary SQLite stores). Space, data split and budget: see bench/space.py and
bench/peers.yaml.

    .venv/bin/python bench/peers.py            # the four runs, ~6 minutes on 2 cores
    .venv/bin/python bench/peers.py --only nnsweep nnsweep-complete

``nnsweep`` is the budget of the peers: 20 trials, pruned ones included
(``trials_count: all``, Optuna's ``n_trials``), with median pruning. ``nnsweep-complete``
(only when asked for) runs until 20 trials are COMPLETE, pruned ones on top: more work than
any peer, for the accuracy a longer sweep buys.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH, ROOT, machine, stores, versions  # noqa: E402

PY = sys.executable
CONTENDERS = {
    "optuna": [PY, str(BENCH / "peer_optuna_mlflow.py")],
    "kt-random": [PY, str(BENCH / "peer_kerastuner.py"), "--tuner", "random"],
    "kt-hyperband": [PY, str(BENCH / "peer_kerastuner.py"), "--tuner", "hyperband"],
}
OURS = ("nnsweep", "nnsweep-complete")


def run_peer(name: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(CONTENDERS[name], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    return result


def run_nnsweep(count: str = "all") -> dict:
    import optuna

    tmp, storage, tracking = stores("peers")
    cmd = [
        str(Path(PY).parent / "nnsweep"),
        "run",
        str(BENCH / "peers.yaml"),
        "--quiet",
        "--storage",
        storage,
        "--tracking-uri",
        tracking,
    ]
    sweep = BENCH / "peers.yaml"
    if count != "all":
        sweep = Path(tmp) / "peers.yaml"
        text = (BENCH / "peers.yaml").read_text()
        sweep.write_text(text.replace("trials_count: all", f"trials_count: {count}"))
    cmd[2] = str(sweep)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"nnsweep failed:\n{proc.stderr[-3000:]}")
    study = optuna.load_study(study_name="bench-peers", storage=storage)
    states = [t.state.name for t in study.trials]
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "peer": "nnsweep, 20 trials (pruned count)"
        if count == "all"
        else "nnsweep, 20 COMPLETE trials (pruned on top)",
        "trials": len(states),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "epochs_trained": epochs,
        "best_val_accuracy": study.best_value,
        "wall_seconds": wall,
    }


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
            res = run_nnsweep("all" if name == "nnsweep" else "complete")
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
        ok = ratio <= 0.8 and me["best_val_accuracy"] >= best
        print(
            f"peers [{me['peer']}]: {me['wall_seconds']:.1f} s / fastest peer {fastest:.1f} s = "
            f"ratio {ratio:.2f} (target <= 0.80); best val_accuracy {me['best_val_accuracy']:.4f}"
            f" vs best peer {best:.4f} (target >=) {'MET' if ok else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
