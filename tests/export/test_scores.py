"""Test-split scores of a model's output, as the model card gives them, for every task."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

# the module, not its functions: pytest would collect a bare ``test_metrics`` as a test
from nnsweep.export import scores
from nnsweep.tasks import BINARY, MULTICLASS, REGRESSION, Task


def test_regression_card_metrics_equal_a_fresh_computation() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(50, 10, 200)
    pred = y + rng.normal(0, 3, 200)
    y_train = rng.normal(48, 10, 500)
    got = scores.test_metrics(Task(REGRESSION), y, pred[:, None], y_train=y_train)
    assert got["n"] == 200
    assert got["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert got["r2"] == pytest.approx(r2_score(y, pred))
    mean = y_train.mean()
    assert got["baseline"]["mae"] == pytest.approx(mean_absolute_error(y, np.full(200, mean)))
    assert got["mae"] < got["baseline"]["mae"]


def test_classification_card_metrics_use_the_original_label_names() -> None:
    y = np.array([0, 0, 1, 1, 1, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4],
         [0.1, 0.1, 0.8]]
    )  # fmt: skip
    got = scores.test_metrics(Task(MULTICLASS, 3), y, probs, (1, 5, 7), y_train=np.array([1, 1, 0]))
    assert got["labels"] == [1, 5, 7]
    assert got["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["loss"] == pytest.approx(-np.log(probs[np.arange(6), y]).mean())
    assert (
        got["baseline"]["accuracy"] == pytest.approx(3 / 6) and "5" in got["baseline"]["predictor"]
    )
    assert "auc" not in got


def test_binary_card_metrics_add_auc() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 300), 0, 1)
    got = scores.test_metrics(Task(BINARY, 2), y, p[:, None], ("bad", "good"))
    assert got["auc"] == pytest.approx(roc_auc_score(y, p))
    assert got["labels"] == ["bad", "good"]
    assert got["accuracy"] == pytest.approx(((p >= 0.5) == y).mean())


def test_roc_auc_counts_ties_half_and_is_nan_for_one_class() -> None:
    assert scores.roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert scores.roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(
        roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    )
    assert np.isnan(scores.roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
