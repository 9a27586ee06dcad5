"""Does averaging the K best trials pay off on small tables? Measured on validation rows only.

For scikit-learn's breast_cancer, wine and diabetes tables and a few seeded partitions: 20 %
of the rows are set aside as the partition's test rows and never written or read here. The
rest (the "dev" rows) is a CSV that nnsweep sweeps as a user would (holdout validation,
every trial's model logged). The sweep's own test split of the dev CSV, which no trial saw
and no choice was made on, is the *inner holdout*: the best trial alone and the mean of the
K best trials' logged models (``nnsweep export --ensemble K``'s model) are both scored there.
From the partition's point of view these are validation rows, so the default chosen from
these figures never looked at a test row.

    .venv/bin/python bench/ensemble_gain.py [--seeds 3] [--trials 12] [--out docs/...json]

Prints one line per table and seed, then the mean gain of K = 3 and 5 per table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

TABLES = ("breast_cancer", "wine", "diabetes")
SPACE = {
    "n_layers": {"low": 1, "high": 3},
    "units": {"low": 16, "high": 128, "log": True},
    "activation": ["relu", "elu", "tanh"],
    "optimizer": "adam",
    "learning_rate": {"low": 3.0e-4, "high": 1.0e-2, "log": True},
    "batch_size": [16, 32],
    "dropout": {"low": 0.0, "high": 0.3},
}


def _frame(name: str) -> Any:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(as_frame=True).frame


def _sweep(folder: Path, name: str, seed: int, trials: int) -> tuple[Path, dict[str, Any]]:
    frame = _frame(name)
    order = np.random.default_rng(1000 + seed).permutation(len(frame))
    dev = frame.iloc[order[len(frame) // 5 :]]  # the partition's test rows are dropped here
    csv = folder / f"{name}-{seed}.csv"
    dev.to_csv(csv, index=False)
    spec = {
        "name": f"{name}-{seed}",
        "dataset": {"path": str(csv), "target": "target", "validation": 0.2, "test": 0.25},
        "trials": trials,
        "seed": seed,
        "sampler": "tpe",
        "pruner": "none",
        "log_models": "all",
        "train": {
            "epochs": 60,
            "batch_size": 32,
            "early_stopping": {"patience": 10, "restore_best_weights": True},
        },
        "space": SPACE,
    }
    if name == "diabetes":
        spec["dataset"]["task"] = "regression"
    path = folder / f"{name}-{seed}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path, spec


def _score(task: Any, y: np.ndarray, out: np.ndarray) -> float:
    """Accuracy (classification) or MAE (regression) on the inner holdout."""
    if task.is_classification:
        pred, _ = task.decode(out)
        return float((pred == y).mean())
    return float(np.abs(out.reshape(-1) - y).mean())


def measure(name: str, seed: int, trials: int, folder: Path) -> dict[str, Any]:
    from mlflow import MlflowClient
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from nnsweep.cli.main import main
    from nnsweep.data.load import load_dataset
    from nnsweep.export.source import logged_model, run_of
    from nnsweep.names import RUN_ID_ATTR
    from nnsweep.spec.config import DatasetSpec
    from nnsweep.study.storage import load_study

    storage = f"sqlite:///{folder / 'optuna.db'}"
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    sweep, spec = _sweep(folder, name, seed, trials)
    start = time.perf_counter()
    stores = ["--storage", storage, "--tracking-uri", tracking]
    assert main(["run", str(sweep), "--quiet", *stores]) == 0
    study = load_study(spec["name"], storage)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    done = sorted(done, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    data = load_dataset(DatasetSpec.model_validate(spec["dataset"]), seed=seed)
    client = MlflowClient(tracking_uri=tracking)
    outputs = []
    for t in done[:5]:
        run = run_of(client, {"number": t.number, "run_id": t.user_attrs[RUN_ID_ATTR]}, tracking)
        model = logged_model(run, t.number, tracking)
        outputs.append(np.asarray(model.predict(data.x_test, verbose=0), dtype=np.float64))
    y = np.asarray(data.y_test)
    row = {"table": name, "seed": seed, "n_holdout": len(y), "trials": len(done)}
    for k in (1, 3, 5):
        if len(outputs) >= k:
            row[f"k{k}"] = _score(data.task, y, np.mean(outputs[:k], axis=0))
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for name in args.tables:
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory(prefix="nnsweep-ens-") as tmp:
                row = measure(name, seed, args.trials, Path(tmp))
            print(json.dumps(row), flush=True)
            rows.append(row)
    for name in args.tables:
        mine = [r for r in rows if r["table"] == name]
        metric = "mae" if name == "diabetes" else "accuracy"
        for k in (3, 5):
            gains = [r[f"k{k}"] - r["k1"] for r in mine if f"k{k}" in r]
            if gains:
                print(
                    f"{name}: holdout {metric}, K={k} minus best alone: mean {np.mean(gains):+.4f}"
                    f" (min {min(gains):+.4f}, max {max(gains):+.4f}, {len(gains)} partitions)"
                )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
