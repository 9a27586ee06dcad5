"""What each zero-config technique adds or costs, scored on validation rows only.

    .venv/bin/python bench/ablation.py                                  # 3 tables x 2 seeds
    .venv/bin/python bench/ablation.py --tables wine --seeds 3 --trials 12

For each table and seed, the TRAINING part of bench/tables.py's partition (the same seeded
80/20 split; its test rows are deleted unread) is split again, 75/25 (stratified for classes),
into ``fit.csv`` and ``holdout.csv``. Every variant sweeps ``fit.csv`` and exports with
``dataset.test_path: holdout.csv``, so the figure on its card is a score on rows no choice saw,
and the partitions' test rows stay unread for bench/tables.py. The variants:

* ``default``: the zero-config sweep (its resolved file is saved with ``--save-sweep``, the
  warm start it suggests dropped);
* ``no_start``: without ``start_with`` (the two plain MLPs the default trains first), so
  every trial is the sampler's;
* ``holdout``: the same, selecting on a 0.2 holdout instead of 5-fold cross-validation;
* ``no_wd``: plain Adam instead of AdamW with a searched weight decay;
* ``standard``: inputs always standardised (the default searches standard | quantile);
* ``quantile``: inputs always quantile-normalised;
* ``no_embed``: no piecewise-linear numeric embeddings (the default searches none | them);
* ``single``: the default sweep's best trial alone. The default export of these small tables
  is the mean of the 3 best trials (``--ensemble auto``); its card scores the best trial alone
  in the same read (``ensemble.best_single``), so no second export is needed.

Each variant is the default's resolved file with one entry changed, and every sweep runs the
same fixed number of trials (``--trials``, default 12, no timeout), so the machine's load does
not change what is compared. Beside them, on the same rows: gradient boosting, scikit-learn's
MLP and the plain Keras MLP of bench/tables.py. Printed: per table and variant, the mean ±
standard deviation over seeds of the holdout metric (accuracy, or MAE for diabetes), the
difference from ``default``, and the mean of the sweep's own CV/holdout best value.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.tables import (  # noqa: E402
    REGRESSION,
    TARGET,
    child_keras,
    child_sklearn,
    write_partition,
)

TABLES = ("breast_cancer", "wine", "diabetes")
VARIANTS = (
    "default",
    "no_start",
    "holdout",
    "no_wd",
    "standard",
    "quantile",
    "no_embed",
    "single",
)
BASELINES = ("gbm", "sk_mlp", "keras_mlp")


def inner_split(table: str, seed: int, folder: Path) -> tuple[Path, Path]:
    """fit.csv / holdout.csv: 75/25 of the partition's training rows (test rows deleted)."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    train, test = write_partition(table, seed, folder)
    test.unlink()  # never read here
    frame = pd.read_csv(train)
    strat = None if table in REGRESSION else frame[TARGET]
    fit, hold = train_test_split(frame, test_size=0.25, random_state=1000 + seed, stratify=strat)
    fit.to_csv(folder / "fit.csv", index=False)
    hold.to_csv(folder / "holdout.csv", index=False)
    return folder / "fit.csv", folder / "holdout.csv"


def variant_spec(resolved: dict[str, Any], variant: str, name: str) -> dict[str, Any]:
    """The default's resolved sweep with the one entry ``variant`` changes."""
    spec = json.loads(json.dumps(resolved))
    spec["name"] = name
    spec.pop("warm_start", None)  # --save-sweep suggests the next sweep; this one starts cold
    space = spec["space"]
    fixed: tuple[str, ...] = ()  # dimensions the variant fixes: out of its start points
    if variant == "no_start":
        spec.pop("start_with", None)
    elif variant == "holdout":
        spec["dataset"]["validation"] = 0.2
    elif variant == "no_wd":
        space["optimizer"] = "adam"
        space.pop("weight_decay", None)
        fixed = ("weight_decay",)
    elif variant in ("standard", "quantile"):
        space["input_transform"] = variant
        fixed = ("input_transform",)
    elif variant == "no_embed":
        space["numeric_embedding"] = "none"
        fixed = ("numeric_embedding",)
    elif variant != "default":
        raise SystemExit(f"unknown variant {variant}")
    if spec.get("start_with"):
        spec["start_with"] = [
            {k: v for k, v in p.items() if k not in fixed} for p in spec["start_with"]
        ]
    return spec


def _nnsweep(folder: Path, args: list[str]) -> None:
    exe = str(Path(sys.executable).with_name("nnsweep"))
    env = {
        **os.environ,
        "NNSWEEP_STORAGE": f"journal:///{folder}/optuna.log",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
    }
    done = subprocess.run([exe, *args], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nnsweep {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def _card_figures(export: Path, *, single: bool = False) -> tuple[float, float | None]:
    """(holdout metric, the sweep's best validation value) from an export's card; ``single``:
    the best trial alone's metric, which an ensemble's card holds beside its own."""
    card = json.loads((export / "model_card.json").read_text(encoding="utf-8"))
    test = card["test"]
    if single:
        test = (card.get("ensemble") or {}).get("best_single", test)
    score = float(test["mae"] if "mae" in test else test["accuracy"])
    value = (card.get("objective") or {}).get("value")
    return score, (float(value) if value is not None else None)


def run_variants(
    table: str, seed: int, folder: Path, variants: list[str], trials: int
) -> dict[str, tuple[float, float | None]]:
    """{variant: (holdout metric, best validation value)} for one table and seed."""
    import yaml

    fit, hold = inner_split(table, seed, folder)
    out: dict[str, tuple[float, float | None]] = {}
    base = folder / "default"
    base.mkdir()
    first = {"name": f"{table}_{seed}_default", "trials": trials}
    first["dataset"] = {"path": str(fit), "target": TARGET, "test_path": str(hold)}  # type: ignore[assignment]
    (base / "sweep.yaml").write_text(yaml.safe_dump(first), encoding="utf-8")
    _nnsweep(base, ["run", "sweep.yaml", "--quiet", "--save-sweep", "resolved.yaml"])
    _nnsweep(base, ["export", first["name"], "--out", "export"])  # type: ignore[list-item]
    out["default"] = _card_figures(base / "export")
    resolved = yaml.safe_load((base / "resolved.yaml").read_text(encoding="utf-8"))
    resolved.pop("timeout", None)
    resolved["trials"] = trials
    if "single" in variants:
        out["single"] = _card_figures(base / "export", single=True)
    for variant in variants:
        if variant in out:
            continue
        where = folder / variant
        where.mkdir()
        spec = variant_spec(resolved, variant, f"{table}_{seed}_{variant}")
        (where / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        _nnsweep(where, ["run", "sweep.yaml", "--quiet"])
        _nnsweep(where, ["export", spec["name"], "--out", "export"])
        out[variant] = _card_figures(where / "export")
    regression = table in REGRESSION
    for name in BASELINES:
        if name == "keras_mlp":
            score = child_keras(fit, hold, regression, seed)
        else:
            score = child_sklearn(name, fit, hold, regression, seed)
        out[name] = (score, None)
    return out


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0, help="partitions first-seed, ...")
    ap.add_argument("--trials", type=int, default=12)
    args = ap.parse_args()
    from bench._common import machine, versions

    print(f"# {machine()}; {versions('nnsweep', 'tensorflow', 'keras', 'scikit-learn')}")
    print(f"# {args.trials} trials per sweep; holdout = 25% of each partition's training rows")
    print("# metric: accuracy (higher is better), diabetes: MAE (lower is better)")
    variants = args.variants.split(",")
    root = Path(tempfile.mkdtemp(prefix="nnsweep-ablation-"))
    for table in args.tables.split(","):
        per: dict[str, list[tuple[float, float | None]]] = {}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            found = run_variants(table, seed, root / table / str(seed), variants, args.trials)
            for name, figures in found.items():
                per.setdefault(name, []).append(figures)
                print(f"#   {table} seed {seed} {name:10s} holdout {figures[0]:.4f}", flush=True)
        base = statistics.mean(s for s, _ in per["default"])
        for name in [*variants, *BASELINES]:
            scores = [s for s, _ in per[name]]
            values = [v for _, v in per[name] if v is not None]
            chosen = f"  sweep best {statistics.mean(values):.4f}" if values else ""
            delta = statistics.mean(scores) - base
            print(
                f"{table:14s} {name:10s} holdout {_mean_sd(scores)}  vs default {delta:+.4f}"
                f"{chosen}  ({len(scores)} seeds)",
                flush=True,
            )


if __name__ == "__main__":
    main()
