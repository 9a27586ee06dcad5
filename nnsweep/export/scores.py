"""Test-split scores of a model's output, as the model card gives them, for every task."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnsweep.tasks import BINARY, REGRESSION, Task


def test_metrics(
    task: Task,
    y_true: np.ndarray,
    output: np.ndarray,
    class_names: tuple[Any, ...] | None = None,
    y_train: np.ndarray | None = None,
) -> dict[str, Any]:
    """The card's test metrics of a model's ``output`` on ``y_true``.

    Classification: ``n``, ``accuracy``, ``loss`` (cross-entropy on probabilities clipped at
    1e-7), ``per_class_accuracy``, ``confusion_matrix`` (rows true, columns predicted) with
    ``labels`` (the original label names), binary also ``auc``. Regression: ``n``, ``mae``,
    ``rmse``, ``r2`` (1 - SSE/SST around the test mean; 0 when the test target is constant).
    With ``y_train``, a ``baseline`` entry holds the trivial predictor's scores: the majority
    class of the training labels, or the training mean.
    """
    y = np.asarray(y_true)
    if task.kind == REGRESSION:
        return _regression_metrics(y, np.asarray(output, np.float64).reshape(len(y)), y_train)
    return _classification_metrics(task, y.astype(np.int64), output, class_names, y_train)


def _classification_metrics(
    task: Task,
    y: np.ndarray,
    output: np.ndarray,
    class_names: tuple[Any, ...] | None,
    y_train: np.ndarray | None,
) -> dict[str, Any]:
    out = np.asarray(output, dtype=np.float64).reshape(len(y), -1)
    n_classes = int(task.n_classes or out.shape[1])
    pred, _ = task.decode(out)
    probs = np.concatenate([1.0 - out, out], axis=1) if task.kind == BINARY else out
    p_true = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0 - 1e-7)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    names = list(class_names) if class_names is not None else list(range(n_classes))
    metrics: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "loss": float(-np.log(p_true).mean()) if len(y) else float("nan"),
        "labels": names,
        "per_class_accuracy": [round(float(a), 4) for a in per_class],
        "confusion_matrix": confusion.tolist(),
    }
    if task.kind == BINARY:
        metrics["auc"] = roc_auc(y, out[:, 0])
    if y_train is not None and len(y_train):
        majority = int(np.bincount(np.asarray(y_train, np.int64), minlength=n_classes).argmax())
        metrics["baseline"] = {
            "predictor": f"majority class of the training split ({names[majority]!r})",
            "accuracy": float((y == majority).mean()) if len(y) else float("nan"),
        }
    return metrics


def _regression_metrics(
    y: np.ndarray, pred: np.ndarray, y_train: np.ndarray | None
) -> dict[str, Any]:
    y = y.astype(np.float64)
    err = pred - y
    sst = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    metrics: dict[str, Any] = {
        "n": int(len(y)),
        "mae": float(np.abs(err).mean()) if len(y) else float("nan"),
        "rmse": float(np.sqrt((err**2).mean())) if len(y) else float("nan"),
        "r2": 1.0 - float((err**2).sum()) / sst if sst > 0 else 0.0,
    }
    if y_train is not None and len(y_train):
        mean = float(np.mean(np.asarray(y_train, np.float64)))
        metrics["baseline"] = {
            "predictor": f"mean of the training split ({mean:.6g})",
            "mae": float(np.abs(y - mean).mean()) if len(y) else float("nan"),
            "rmse": float(np.sqrt(((y - mean) ** 2).mean())) if len(y) else float("nan"),
        }
    return metrics


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for labels ``y`` in {0, 1} (ties count half);
    NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = np.asarray(score)[order]
    # average ranks over ties (Mann-Whitney U)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
