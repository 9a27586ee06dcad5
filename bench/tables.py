"""Target 5: nnsweep with defaults only against the simple baselines, on scikit-learn's tables.

    .venv/bin/python bench/tables.py                     # 5 tables x 5 partitions (seeds 25-29)
    .venv/bin/python bench/tables.py --tables wine,diabetes --seeds 2
    .venv/bin/python bench/tables.py --first-seed 10 --seeds 1 --contenders nnsweep,gbm
    .venv/bin/python bench/tables.py --contenders gbm,sk_mlp  # the baselines alone
    .venv/bin/python bench/tables.py --inner --seeds 2        # validation rows only
    .venv/bin/python bench/tables.py --paired /tmp/nnsweep-tables-XXXX  # paired, from a run

For each table (breast_cancer, wine, iris, diabetes, digits: the real tables scikit-learn
bundles) and each seed, one seeded 80/20 partition (stratified for classes) is written as
``train.csv`` and ``test.csv``. Every contender sees the same two files, fits on ``train.csv``
only, makes every choice on it (validation or cross-validation inside ``train.csv``), and
scores ``test.csv`` once, at the end:

* ``nnsweep``: a sweep file holding only ``name`` and ``dataset: {path, target, test_path}``
  (no space, no budget, nothing tuned per table), then ``nnsweep export`` with its defaults;
  the figure is the exported model's test metric from ``model_card.json``;
* ``gbm``: ``HistGradientBoosting{Classifier,Regressor}()`` with default settings;
* ``sk_mlp``: ``MLPClassifier()`` / ``MLPRegressor()`` with defaults on standardised inputs
  (``StandardScaler`` fitted on the training rows; the regressor's target standardised too);
* ``keras_mlp``: one plain untuned Keras MLP (2 x 64 relu, Adam 1e-3, batch 32, up to 200
  epochs with early stopping on a 20 % validation split of the training rows, patience 20).

When nnsweep's export is an ensemble (``--ensemble auto`` on these small tables), its card also
holds the best trial alone, scored in the same read; that figure is printed as
``nnsweep_single`` (not a contender of its own: no second read, no choice made on it).

``--inner`` reads validation rows only, for choosing a default: each partition's training part
is split again 80/20 (seeded, stratified for classes) into ``train.csv`` and ``test.csv`` (the
inner holdout), and the partition's own test rows are never written.

Every contender runs as its own process and is timed the same way: the whole process, from
its start to its exit (for nnsweep: ``nnsweep run`` and ``nnsweep export`` together). The test
metric is accuracy for classes and MAE for diabetes. It prints one line per (table, contender)
with the mean ± standard deviation over the partitions and the mean wall time, then the
targets of the issue: nnsweep >= gbm - 0.01 accuracy, MAE <= 1.05 x gbm's, never below either
plain MLP.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

TABLES = ("breast_cancer", "wine", "iris", "diabetes", "digits")
CONTENDERS = ("nnsweep", "gbm", "sk_mlp", "keras_mlp")
REGRESSION = {"diabetes"}
TARGET = "target"


def write_partition(
    table: str, seed: int, folder: Path, *, inner: bool = False
) -> tuple[Path, Path]:
    """The seeded 80/20 partition of ``table`` as train.csv and test.csv in ``folder``; with
    ``inner``, its training part split again 80/20 instead (its test rows are not written)."""
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    frame = getattr(sklearn.datasets, f"load_{table}")(as_frame=True).frame
    frame = frame.rename(columns={"target": TARGET})
    if table == "wine":  # wine's labels as names, so label mapping is exercised too
        frame[TARGET] = frame[TARGET].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    strat = None if table in REGRESSION else frame[TARGET]
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=strat)
    if inner:
        strat = None if table in REGRESSION else train[TARGET]
        train, test = train_test_split(train, test_size=0.2, random_state=seed, stratify=strat)
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


def _xy(path: Path) -> tuple[object, object]:
    import pandas as pd

    frame = pd.read_csv(path)
    return frame.drop(columns=[TARGET]).to_numpy(float), frame[TARGET].to_numpy()


def _score(regression: bool, y_true: object, y_pred: object) -> float:
    from sklearn.metrics import accuracy_score, mean_absolute_error

    if regression:
        return float(mean_absolute_error(y_true, y_pred))
    return float(accuracy_score(y_true, y_pred))


def baseline(kind: str, regression: bool, seed: int) -> object:
    """An unfitted ``gbm`` or ``sk_mlp`` with scikit-learn's defaults (the MLP on standardised
    inputs, the regressor's target standardised too)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "gbm":
        return (HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier)(
            random_state=seed
        )
    if regression:
        return make_pipeline(
            StandardScaler(),
            TransformedTargetRegressor(
                MLPRegressor(random_state=seed), transformer=StandardScaler()
            ),
        )
    return make_pipeline(StandardScaler(), MLPClassifier(random_state=seed))


def child_sklearn(kind: str, train: Path, test: Path, regression: bool, seed: int) -> float:
    """gbm or sk_mlp: fit on train.csv, score test.csv once."""
    x, y = _xy(train)
    model = baseline(kind, regression, seed)
    model.fit(x, y)  # type: ignore[attr-defined]
    xt, yt = _xy(test)
    return _score(regression, yt, model.predict(xt))  # type: ignore[attr-defined]


def child_keras(train: Path, test: Path, regression: bool, seed: int) -> float:
    """One plain, untuned Keras MLP on standardised inputs."""
    import keras
    import numpy as np

    x, y = _xy(train)
    xt, yt = _xy(test)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9  # type: ignore[union-attr]
    x, xt = (x - mean) / std, (xt - mean) / std  # type: ignore[operator]
    keras.utils.set_random_seed(seed)
    if regression:
        y_mean, y_std = float(np.mean(y)), float(np.std(y))  # type: ignore[arg-type]
        target, out, loss = (np.asarray(y, float) - y_mean) / y_std, keras.layers.Dense(1), "mse"
    else:
        labels = np.unique(y)  # type: ignore[call-overload]
        target = np.searchsorted(labels, y)
        out = keras.layers.Dense(len(labels), activation="softmax")
        loss = "sparse_categorical_crossentropy"
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),  # type: ignore[union-attr]
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            out,
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    stop = keras.callbacks.EarlyStopping(patience=20, restore_best_weights=True)
    model.fit(
        x, target, validation_split=0.2, epochs=200, batch_size=32, callbacks=[stop], verbose=0
    )
    raw = model.predict(xt, verbose=0)
    if regression:
        return _score(True, yt, raw[:, 0] * y_std + y_mean)
    return _score(False, yt, labels[raw.argmax(axis=1)])


def run_nnsweep(table: str, seed: int, train: Path, test: Path, folder: Path) -> dict[str, object]:
    """nnsweep with defaults only: a sweep file naming the data, then export; whole processes."""
    import yaml

    name = f"{table}_{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    sweep = folder / "sweep.yaml"
    dataset = {"path": str(train), "target": TARGET, "test_path": str(test)}
    sweep.write_text(yaml.safe_dump({"name": name, "dataset": dataset}), encoding="utf-8")
    exe = str(Path(sys.executable).with_name("nnsweep"))
    env = {
        **os.environ,
        "NNSWEEP_STORAGE": f"journal:///{folder}/optuna.log",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
    }
    for cmd in (
        [exe, "run", str(sweep), "--quiet"],
        [exe, "export", name, "--out", str(folder / "export")],
    ):
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    card = json.loads((folder / "export" / "model_card.json").read_text(encoding="utf-8"))
    test_figures = card["test"]
    metric = "mae" if "mae" in test_figures else "accuracy"
    single = (card.get("ensemble") or {}).get("best_single", test_figures)
    return {"score": float(test_figures[metric]), "single": float(single[metric]), "card": card}


def contender(
    name: str, table: str, seed: int, folder: Path, single: list[float] | None = None
) -> tuple[float, float]:
    """(test score, whole-process seconds) of one contender on one partition; for nnsweep, the
    best trial's own score (the card's, same read) is appended to ``single``."""
    train, test = folder / "train.csv", folder / "test.csv"
    start = time.perf_counter()
    if name == "nnsweep":
        done = run_nnsweep(table, seed, train, test, folder / "nnsweep")
        if single is not None:
            single.append(float(done["single"]))  # type: ignore[arg-type]
        return float(done["score"]), time.perf_counter() - start  # type: ignore[arg-type]
    out = folder / f"{name}.json"
    cmd = [sys.executable, __file__, "--child", name, "--train", str(train), "--test", str(test)]
    cmd += ["--seed", str(seed), "--out", str(out)] + (
        ["--regression"] if table in REGRESSION else []
    )
    subprocess.run(cmd, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - start
    return float(json.loads(out.read_text(encoding="utf-8"))["score"]), seconds


def paired(root: Path) -> None:
    """Paired differences, nnsweep minus each contender, from the scores a run left in ``root``
    (the cards and the baselines' score files: nothing is fitted and no test row is read)."""
    for table_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        table = table_dir.name
        scores: dict[str, list[float]] = {}
        for seed_dir in sorted(table_dir.iterdir(), key=lambda p: int(p.name)):
            card_file = seed_dir / "nnsweep" / "export" / "model_card.json"
            if not card_file.exists():
                continue
            card = json.loads(card_file.read_text(encoding="utf-8"))
            metric = "mae" if "mae" in card["test"] else "accuracy"
            single = (card.get("ensemble") or {}).get("best_single", card["test"])
            scores.setdefault("nnsweep", []).append(float(card["test"][metric]))
            scores.setdefault("(single)", []).append(float(single[metric]))
            for name in CONTENDERS[1:]:
                file = seed_dir / f"{name}.json"
                if file.exists():
                    got = float(json.loads(file.read_text(encoding="utf-8"))["score"])
                    scores.setdefault(name, []).append(got)
        ours = scores.get("nnsweep", [])
        sign = -1.0 if table in REGRESSION else 1.0  # positive: nnsweep better
        for name, theirs in scores.items():
            if name == "nnsweep" or len(theirs) != len(ours):
                continue
            diff = [sign * (a - b) for a, b in zip(ours, theirs, strict=True)]
            wins = sum(d > 1e-9 for d in diff)
            losses = sum(d < -1e-9 for d in diff)
            spread = statistics.stdev(diff) if len(diff) > 1 else 0.0
            print(
                f"{table:14s} nnsweep vs {name:10s} better by {statistics.mean(diff):+.4f}, "
                f"sd {spread:.4f} (wins/ties/losses {wins}/{len(diff) - wins - losses}/{losses})"
            )


def summary(scores: list[float]) -> str:
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return f"{statistics.mean(scores):.4f} ± {spread:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--first-seed",
        type=int,
        default=25,
        help="first partition seed (a later run on fresh partitions reads no test rows twice)",
    )
    ap.add_argument(
        "--inner",
        action="store_true",
        help="validation rows only: split each partition's training part 80/20 again and "
        "score the inner holdout (the partition's test rows are not written)",
    )
    ap.add_argument("--paired", type=Path, help="print paired differences from a run's folder")
    ap.add_argument("--child", choices=("gbm", "sk_mlp", "keras_mlp"), help=argparse.SUPPRESS)
    ap.add_argument("--train", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--test", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--regression", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.paired:
        paired(args.paired)
        return
    if args.child:
        if args.child == "keras_mlp":
            score = child_keras(args.train, args.test, args.regression, args.seed)
        else:
            score = child_sklearn(args.child, args.train, args.test, args.regression, args.seed)
        args.out.write_text(json.dumps({"score": score}), encoding="utf-8")
        return

    from bench._common import machine, versions

    print(f"# {machine()}; {versions('nnsweep', 'tensorflow', 'keras', 'scikit-learn')}")
    scored = "inner-holdout (validation rows only)" if args.inner else "test"
    where = "holdout" if args.inner else "test"
    print(f"# {scored} metric: accuracy (higher is better), diabetes: MAE (lower is better)")
    names = args.contenders.split(",")
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    singles: dict[str, list[float]] = {}
    root = Path(tempfile.mkdtemp(prefix="nnsweep-tables-"))
    print(f"# partitions under {root} (bench/cv_optimism.py reads them)", flush=True)
    for table in args.tables.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            folder = root / table / str(seed)
            write_partition(table, seed, folder, inner=args.inner)
            for name in names:
                got = contender(name, table, seed, folder, singles.setdefault(table, []))
                results.setdefault((table, name), []).append(got)
        for name in names:
            rows = results[(table, name)]
            print(
                f"{table:14s} {name:10s} {where} {summary([s for s, _ in rows])}  "
                f"wall {statistics.mean(t for _, t in rows):6.1f} s  ({len(rows)} partitions)",
                flush=True,
            )
            if name == "nnsweep":
                alone = singles[table]
                print(
                    f"{table:14s} {'(single)':10s} {where} {summary(alone)}  the best trial alone, "
                    f"same read: {', '.join(f'{v:.4g}' for v in alone)}",
                    flush=True,
                )
    if "nnsweep" in names and "gbm" in names:
        print("# targets")
        for table in args.tables.split(","):
            ours = statistics.mean(s for s, _ in results[(table, "nnsweep")])
            gbm = statistics.mean(s for s, _ in results[(table, "gbm")])
            if table in REGRESSION:
                verdict = (
                    f"MAE {ours:.2f} vs gbm {gbm:.2f}: ratio {ours / gbm:.3f} (target <= 1.05)"
                )
            else:
                verdict = (
                    f"accuracy {ours:.4f} vs gbm {gbm:.4f}: {ours - gbm:+.4f} (target >= -0.01)"
                )
            print(f"{table:14s} {verdict}")


if __name__ == "__main__":
    main()
