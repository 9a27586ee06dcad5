"""How optimistic nnsweep's CV figure is next to the baselines' own, from a tables.py run.

    .venv/bin/python bench/cv_optimism.py /tmp/nnsweep-tables-XXXX          # every table in it
    .venv/bin/python bench/cv_optimism.py /tmp/nnsweep-tables-XXXX --tables digits

``bench/tables.py`` leaves its partitions under the folder it prints (``# partitions under``).
For each partition this script prints, without reading any ``test.csv``:

* ``nnsweep cv``: the exported trial's K-fold mean on ``train.csv``, from its ``model_card.json``
  (the figure the sweep chose it on), and that card's test figure, which tables.py already read
  (no new read);
* ``sk_mlp cv`` and ``gbm cv``: the same kind of figure for scikit-learn's default MLP (on
  standardised inputs) and default gradient boosting, 5 folds of ``train.csv`` (stratified for
  classes, shuffled with the partition's seed), no choice made on them;
* each contender's test figure from tables.py's own files, so the drop from the CV figure to
  the test figure can be set side by side: a contender chosen as the best of many trials on
  the CV figure is expected to fall further than one that was never chosen.

The metric is accuracy for classes and MAE for diabetes, as in tables.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.tables import REGRESSION, TABLES, _xy, baseline  # noqa: E402


def baseline_cv(kind: str, train: Path, regression: bool, seed: int) -> float:
    """5-fold CV of a default scikit-learn baseline on ``train.csv`` (accuracy, or MAE)."""
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    x, y = _xy(train)
    folds = (KFold if regression else StratifiedKFold)(5, shuffle=True, random_state=seed)
    scoring = "neg_mean_absolute_error" if regression else "accuracy"
    model = baseline(kind, regression, seed)
    scores = cross_val_score(model, x, y, cv=folds, scoring=scoring)  # type: ignore[arg-type]
    return float(-scores.mean() if regression else scores.mean())


def main() -> None:
    import warnings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="the folder tables.py printed as '# partitions under'")
    ap.add_argument("--tables", default=",".join(TABLES))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # sklearn's ConvergenceWarning at max_iter, as tables.py
    drops: dict[tuple[str, str], list[float]] = {}
    for table in args.tables.split(","):
        regression = table in REGRESSION
        for folder in sorted((args.root / table).glob("*"), key=lambda p: int(p.name)):
            card_path = folder / "nnsweep" / "export" / "model_card.json"
            if not card_path.exists():
                continue
            card = json.loads(card_path.read_text(encoding="utf-8"))
            metric = "mae" if regression else "accuracy"
            seed = int(folder.name)
            cv = {"nnsweep": float(card["cross_validation"]["mean"])}
            test = {"nnsweep": float(card["test"][metric])}
            for kind in ("sk_mlp", "gbm"):
                cv[kind] = baseline_cv(kind, folder / "train.csv", regression, seed)
                test[kind] = float(
                    json.loads((folder / f"{kind}.json").read_text(encoding="utf-8"))["score"]
                )
            line = [f"{table:14s} {seed:3d}"]
            for kind in ("nnsweep", "sk_mlp", "gbm"):
                drop = test[kind] - cv[kind]
                drops.setdefault((table, kind), []).append(-drop if regression else drop)
                line.append(f"{kind} cv {cv[kind]:.4f} test {test[kind]:.4f}")
            print("  ".join(line), flush=True)
        for kind in ("nnsweep", "sk_mlp", "gbm"):
            got = drops.get((table, kind))
            if got:
                print(
                    f"{table:14s} {kind:8s} test minus cv (higher is better): "
                    f"{statistics.mean(got):+.4f} over {len(got)} partitions",
                    flush=True,
                )


if __name__ == "__main__":
    main()
