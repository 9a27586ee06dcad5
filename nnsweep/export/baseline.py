"""Gradient boosting beside the MLP: scikit-learn's HistGradientBoosting on the same rows.

Every table export (a dataset with a feature schema: a user's CSV/Parquet/NPZ, Boston housing)
fits ``HistGradientBoostingClassifier`` or ``HistGradientBoostingRegressor`` with scikit-learn's
default settings (``random_state`` = the sweep's seed) on the rows the exported MLP was fit on
(the training split, or training + validation after ``--retrain``), and scores it on the same
test split, in the same read, with the same metrics and 95 % intervals
(:func:`nnsweep.export.card.score_output`). The card, the export summary line and the MLflow
run (``gbm_test_*``) show it beside the MLP, so a user sees whether the MLP is any good.

Columns are the ones the MLP reads (its :class:`~nnsweep.data.features.FeatureSchema`: the same
dropped identifiers, the same training-time vocabularies). Numeric columns go in unscaled, as
the MLP reads them (float32, so a value differs from the file's in the 8th digit), missing
values as NaN (boosting routes them itself, nothing is imputed). Categorical columns use the
native categorical handling (``categorical_features``), coded by the schema's vocabulary; a
category outside it (rare in training, or new) is a missing value. A categorical column whose
vocabulary exceeds what native handling takes (:data:`MAX_NATIVE_CATEGORIES`) is
ordinal-encoded (frequency rank) as a number instead, and the card says so.

Digit and Keras word datasets are skipped with a reason: 784 pixels or 10,000 word slots make
boosting slow (mnist_5k: about a minute on 2 cores, see docs/export-predict.md) and a card
section nobody asked for; ``nnsweep export --no-baseline`` skips it on a table too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from nnsweep.data.features import NUMERIC_INPUT
from nnsweep.export.card import primary_metric, scalar_metrics, score_output

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from nnsweep.data.features import FeatureSchema
    from nnsweep.data.load import Dataset

# HistGradientBoosting takes category codes below max_bins (255 by default).
MAX_NATIVE_CATEGORIES = 254
METRIC_PREFIX = "gbm_test_"
SECTION = "gradient_boosting"
OFF = "turned off with --no-baseline"
PARALLEL_ROWS = 20_000  # fewer training rows fit on one thread (see gradient_boosting)


@dataclass(frozen=True)
class Columns:
    """How the schema's columns become boosting features: names in matrix order, which ones are
    native categorical, and which categorical ones were ordinal-encoded instead."""

    names: tuple[str, ...]
    categorical: tuple[bool, ...]
    ordinal: tuple[str, ...]


def feature_matrix(x: dict[str, Any], schema: FeatureSchema) -> tuple[np.ndarray, Columns]:
    """The model's input dict (see :func:`nnsweep.data.features.to_inputs`) as a float matrix:
    numeric columns unscaled, at the model's float32 (non-finite → NaN), then categorical
    columns as vocabulary codes (outside the vocabulary → NaN)."""
    parts: list[np.ndarray] = []
    names: list[str] = []
    native: list[bool] = []
    ordinal: list[str] = []
    if schema.numeric:
        numeric = np.asarray(x[NUMERIC_INPUT], dtype=np.float64)
        parts.append(np.where(np.isfinite(numeric), numeric, np.nan))
        names += [c.name for c in schema.numeric]
        native += [False] * len(schema.numeric)
    for column in schema.categorical:
        values = np.asarray(x[column.input]).reshape(-1)
        codes = {v: float(i) for i, v in enumerate(column.vocabulary)}
        coded = np.fromiter((codes.get(_text(v), np.nan) for v in values), np.float64, len(values))
        parts.append(coded.reshape(-1, 1))
        names.append(column.name)
        is_native = len(column.vocabulary) <= MAX_NATIVE_CATEGORIES
        native.append(is_native)
        if not is_native:
            ordinal.append(column.name)
    n = len(next(iter(x.values())))
    matrix = np.concatenate(parts, axis=1) if parts else np.empty((n, 0))
    return matrix, Columns(tuple(names), tuple(native), tuple(ordinal))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def skip_reason(data: Dataset) -> str | None:
    """Why gradient boosting is not fitted on ``data`` (not a table), or ``None``."""
    if data.schema is None:
        return (
            f"{data.name} is not a table ({data.input_width} {data.input_name} per row); "
            "gradient boosting runs on table exports only"
        )
    return None


def gradient_boosting(data: Dataset, *, retrained: bool, seed: int) -> dict[str, Any]:
    """The card's ``gradient_boosting`` section: boosting fit on the rows the MLP was fit on
    (training split; + validation when ``retrained``) and scored on the test split, read here.

    Returns ``{"skipped": reason}`` for data that is not a table.
    """
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    reason = skip_reason(data)
    if reason is not None or data.schema is None:
        return {"skipped": reason}
    x_fit, y_fit = data.train_and_val() if retrained else (data.x_train, data.y_train)
    x, columns = feature_matrix(cast(dict[str, Any], x_fit), data.schema)  # a table: named
    task = data.task
    cls = (
        HistGradientBoostingClassifier
        if task.is_classification
        else (HistGradientBoostingRegressor)
    )
    model = cls(categorical_features=np.array(columns.categorical), random_state=seed)
    # OpenMP threads that wait on busy cores make a small fit 20x slower (wine, 112 rows, 2
    # shared cores: 0.17 s on one thread, 3.7 s on all); a large table is worth the threads
    threads = 1 if len(y_fit) < PARALLEL_ROWS else None
    start = time.perf_counter()
    with threadpool_limits(limits=threads, user_api="openmp"):
        model.fit(x, np.asarray(y_fit))
    seconds = time.perf_counter() - start
    # every choice is made; the test split is read now, with the MLP's
    x_test, _ = feature_matrix(cast(dict[str, Any], data.x_test), data.schema)
    output = _output(model, x_test, task.n_classes, task.kind)
    test = score_output(task, np.asarray(data.y_test), output, data.class_names, y_fit)
    test.pop("baseline", None)  # the trivial predictor is on the MLP's test section already
    return {
        "estimator": cls.__name__,
        "settings": f"scikit-learn {sklearn.__version__} defaults, random_state={seed}",
        "fitted_on": "train+validation" if retrained else "train",
        "train_size": int(len(y_fit)),
        "iterations": int(model.n_iter_),
        "columns": {
            "numeric": len(data.schema.numeric),
            "categorical_native": [
                n for n, c in zip(columns.names, columns.categorical, strict=True) if c
            ],
            "categorical_ordinal": list(columns.ordinal),
        },
        "seconds": round(seconds, 2),
        "test": test,
    }


def _output(model: Any, x: np.ndarray, n_classes: int | None, kind: str) -> np.ndarray:
    """Boosting's answer shaped as the MLP's: P(class 1) for binary, one probability per class
    (classes absent from training at 0) for multiclass, values for regression."""
    if not n_classes:
        return np.asarray(model.predict(x), dtype=np.float64).reshape(-1, 1)
    seen = np.asarray(model.predict_proba(x), dtype=np.float64)
    probs = np.zeros((len(x), n_classes))
    probs[:, np.asarray(model.classes_, dtype=np.int64)] = seen
    return probs[:, 1:2] if kind == "binary" else probs


def _figure(test: dict[str, Any], metric: str) -> str:
    value = test.get(metric)
    bounds = test.get(f"{metric}_ci95")
    fmt = ".4f" if metric == "accuracy" else ".4g"
    shown = f"{value:{fmt}}" if isinstance(value, int | float) else "n/a"
    return shown + (f" [{bounds[0]:{fmt}}, {bounds[1]:{fmt}}]" if bounds else "")


def comparison_line(card: dict[str, Any]) -> str | None:
    """``accuracy: MLP 0.7400 [0.59, 0.85] vs gradient boosting 0.7600 [0.61, 0.87] …`` (95 %
    intervals, same test rows), or ``None`` when boosting was skipped."""
    gbm = card.get(SECTION) or {}
    if "test" not in gbm:
        return None
    metric = primary_metric(card["test"])
    members = len((card.get("ensemble") or {}).get("members") or [])
    mlp = f"MLP ensemble of {members}" if members > 1 else "MLP"
    better = "higher" if metric == "accuracy" else "lower"
    return (
        f"{metric}: {mlp} {_figure(card['test'], metric)} vs gradient boosting "
        f"{_figure(gbm['test'], metric)} (95% intervals, same {card['test']['n']:,} test rows; "
        f"{better} is better)"
    )


def markdown(card: dict[str, Any]) -> list[str]:
    """The ``MODEL_CARD.md`` section on gradient boosting (empty when the card has none)."""
    from nnsweep.export.card import test_headline

    gbm = card.get(SECTION)
    if not gbm:
        return []
    lines = ["", "## Gradient boosting beside the MLP", ""]
    if "test" not in gbm:
        return [*lines, f"Not fitted: {gbm['skipped']}."]
    cols = gbm["columns"]
    native = ", ".join(cols["categorical_native"]) or "none"
    ordinal = ", ".join(cols["categorical_ordinal"])
    lines += [
        f"- {comparison_line(card)}",
        f"- gradient boosting: {test_headline(gbm['test'])}",
        f"- {gbm['estimator']} ({gbm['settings']}), fit on {gbm['fitted_on']} "
        f"({gbm['train_size']:,} rows, {gbm['iterations']} iterations, {gbm['seconds']}s), the "
        "rows the MLP was fit on",
        f"- columns: {cols['numeric']} numeric (missing values as NaN), categorical with native "
        f"handling: {native}" + (f"; ordinal-encoded (too many categories): {ordinal}" if ordinal
                                 else ""),
    ]  # fmt: skip
    return lines


def log_metrics(client: MlflowClient, run_id: str, card: dict[str, Any]) -> None:
    """Log boosting's test figures on the run the export logs to, as ``gbm_test_*``."""
    from mlflow.entities import Metric

    gbm = card.get(SECTION) or {}
    if "test" not in gbm:
        return
    now = int(time.time() * 1000)
    metrics = [
        Metric(METRIC_PREFIX + key, value, now, 0)
        for key, value in scalar_metrics(gbm["test"]).items()
        if value == value
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
