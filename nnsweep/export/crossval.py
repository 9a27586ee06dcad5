"""The card's ``cross_validation`` section: a cross-validated trial's mean ± spread over folds.

A trial scored by K-fold cross-validation (:mod:`nnsweep.train.cv`) logged each fold's value of
the objective metric (``cv_<metric>``, step = fold), their standard deviation and K. The card
shows them as ``mean ± std`` (population standard deviation over the folds), with every fold's
value and the epochs the refit on the whole training part trained (the folds' mean chosen
epoch). Holdout trials have no such section (``None``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnsweep.train.cv import CV_FOLDS_METRIC, cv_metric, cv_std_metric

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from nnsweep.data.load import Dataset


def cv_section(
    client: MlflowClient, run: Run, metric: str, dataset: Dataset, *, refit_epochs: int
) -> dict[str, Any] | None:
    """``{"folds", "rows", "mean", "std", "fold_values", "refit_epochs"}`` of the best trial's
    run, or ``None`` when the sweep was not cross-validated."""
    if not dataset.folds:
        return None
    points = sorted(
        client.get_metric_history(run.info.run_id, cv_metric(metric)), key=lambda m: m.step
    )
    values = [float(m.value) for m in points]
    logged = run.data.metrics
    return {
        "folds": int(logged.get(CV_FOLDS_METRIC, dataset.folds)),
        "rows": dataset.sizes["train"],
        "metric": metric,
        "mean": sum(values) / len(values) if values else None,
        "std": logged.get(cv_std_metric(metric)),
        "fold_values": values,
        "refit_epochs": refit_epochs,
    }


def cv_line(card: dict[str, Any], unit: str) -> str:
    """``validation val_accuracy 0.9532 ± 0.0120 (mean ± std over 5 folds of 455 training
    rows; the best of 12 completed trials, an optimistic estimate …)``."""
    cv, obj, val = card["cross_validation"], card["objective"], card["validation"]
    std = f" ± {cv['std']:.4f}" if cv.get("std") is not None else ""
    return (
        f"validation {obj['metric']} {obj['value']:.4f}{std} (mean ± std over {cv['folds']} "
        f"folds of {cv['rows']:,} training {unit}; the best of {val.get('trials', '?')} "
        "completed trial(s), an optimistic estimate: the test figure is the unbiased one)"
    )


def cv_weights(folds: int, epoch: int) -> dict[str, Any]:
    """The card's ``weights.source`` after cross-validation: a refit, for the folds' epochs."""
    return {"source": f"refit on the whole training part for {epoch} epoch(s), the mean of the "
            f"{folds} folds' chosen epochs"}  # fmt: skip
