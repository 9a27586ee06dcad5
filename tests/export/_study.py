"""A tiny real sweep on one of scikit-learn's bundled tables, for the export tests: the table
as a CSV, a holdout validation split (so trials log their models), a few short trials."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.conftest import Stores

BANDS = ("low", "mid", "high")


def stores_in(root: Path) -> Stores:
    return Stores(root, f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")


def write_csv(root: Path, table: str) -> Path:
    """scikit-learn's ``wine`` (with a categorical ``band`` column derived from alcohol, so
    gradient boosting's native categorical handling is used) or ``diabetes``, as a CSV with a
    ``label`` target."""
    from sklearn.datasets import load_diabetes, load_wine

    loaded = (load_wine if table == "wine" else load_diabetes)(as_frame=True)
    frame = loaded.frame.rename(columns={"target": "label"})
    if table == "wine":
        rank = frame["alcohol"].rank(method="first").to_numpy()
        frame.insert(
            0, "band", np.array(BANDS)[np.minimum((rank * 3 - 1) // len(frame), 2).astype(int)]
        )
    path = root / f"{table}.csv"
    frame.to_csv(path, index=False)
    return path


def sweep(
    root: Path,
    name: str,
    table: str = "wine",
    *,
    trials: int = 3,
    log_models: str = "all",
    **changes: Any,
) -> tuple[Stores, dict[str, Any]]:
    """``nnsweep run`` of a ``trials``-trial random sweep on ``table`` into stores in ``root``;
    returns the stores and the sweep file's content."""
    from nnsweep.cli.main import main

    stores = stores_in(root)
    spec: dict[str, Any] = {
        "name": name,
        "dataset": {"path": str(write_csv(root, table)), "target": "label",
                    "validation": 0.25},
        "trials": trials, "seed": 3, "sampler": "random", "pruner": "none",
        "log_models": log_models,
        "train": {"epochs": 4, "batch_size": 16},
        "space": {"n_layers": 1, "units": {"low": 8, "high": 32}, "activation": "relu",
                  "optimizer": "adam", "learning_rate": {"low": 3e-3, "high": 3e-2, "log": True},
                  "dropout": 0.0},
        **changes,
    }  # fmt: skip
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    assert main(["run", str(path), "--quiet", *stores.args]) == 0
    return stores, spec


def copy_stores(stores: Stores, root: Path) -> Stores:
    """The same studies and runs in fresh database files under ``root`` (artifacts shared):
    a study whose test-read ledger starts as it was in ``stores``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("optuna.db", "mlflow.db"):
        shutil.copy2(stores.root / name, root / name)
    return stores_in(root)


def dataset_of(stores: Stores, study: str) -> Any:
    """The dataset exactly as the export loads it for ``study`` (from its stored spec)."""
    import optuna

    from nnsweep.data.load import sweep_dataset
    from nnsweep.names import SPEC_ATTR
    from nnsweep.spec.config import SweepSpec

    loaded = optuna.load_study(study_name=study, storage=stores.storage)
    return sweep_dataset(SweepSpec.model_validate(loaded.user_attrs[SPEC_ATTR]))
