"""nnsweep.intervals: DeLong's AUC interval against its definition, sklearn and its coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nnsweep.export.intervals import Z95, auc_interval, delong_auc, wilson


def explicit_delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(AUC, variance) from the m x n kernel matrix psi(pos_i, neg_j), as DeLong et al. write it."""
    pos, neg = score[y == 1], score[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    m, n = len(pos), len(neg)
    return float(psi.mean()), float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_interval_match_the_definition_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=300)
    score = np.round(rng.normal(size=300) + 0.8 * y, 1)  # rounded: many ties across classes
    auc, low, high = delong_auc(y, score)
    want_auc, want_var = explicit_delong(y, score)
    assert auc == pytest.approx(roc_auc_score(y, score), rel=1e-12)
    assert auc == pytest.approx(want_auc, rel=1e-12)
    half = Z95 * math.sqrt(want_var)
    assert (low, high) == pytest.approx((auc - half, auc + half), rel=1e-9)


def test_the_interval_covers_the_true_auc_about_95_percent_of_the_time() -> None:
    """Binormal scores (positives N(1, 1), negatives N(0, 1)): the true AUC is Phi(1 / sqrt 2)."""
    true_auc = 0.5 * (1.0 + math.erf(1.0 / math.sqrt(2.0) / math.sqrt(2.0)))
    rng = np.random.default_rng(20261201)
    runs, covered, widths = 600, 0, []
    for _ in range(runs):
        y = np.r_[np.ones(60, int), np.zeros(80, int)]
        score = rng.normal(size=140) + y
        _, low, high = delong_auc(y, score)
        covered += low <= true_auc <= high
        widths.append(high - low)
    assert 0.92 <= covered / runs <= 0.98  # binomial SE ~0.009 around 0.95
    assert 0.12 < float(np.median(widths)) < 0.20  # ~±0.08 on 140 rows


def test_more_rows_give_a_narrower_interval() -> None:
    rng = np.random.default_rng(3)

    def width(n: int) -> float:
        y = np.r_[np.ones(n, int), np.zeros(n, int)]
        _, low, high = delong_auc(y, rng.normal(size=2 * n) + y)
        return high - low

    assert width(2000) < width(200) / 2.5  # shrinks like 1 / sqrt(n)


def test_edge_cases() -> None:
    y = np.array([0, 0, 1, 1])
    assert delong_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == (1.0, 1.0, 1.0)  # separates
    auc, low, high = delong_auc(y, np.array([0.1, 0.9, 0.2, 0.8]))
    assert auc == 0.5 and low >= 0.0 and high <= 1.0  # clipped to [0, 1]
    assert all(math.isnan(v) for v in delong_auc(np.array([1, 1]), np.array([0.1, 0.2])))
    with pytest.raises(ValueError, match="2 labels but 3 scores"):
        delong_auc(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


def test_the_card_interval_is_delong_unless_its_variance_is_zero() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=200)
    score = rng.normal(size=200) + y
    assert auc_interval(y, score) == (*delong_auc(y, score), "DeLong")
    # every positive above every negative: DeLong's variance is 0, a Wilson stand-in is not
    y = np.r_[np.zeros(30, int), np.ones(12, int)]
    auc, low, high, method = auc_interval(y, np.arange(42, dtype=float))
    assert (auc, high) == (1.0, 1.0) and method == "Wilson over the 12 rows of the smaller class"
    assert low == pytest.approx(wilson(12, 12)[0]) and low < 0.8
    assert np.isnan(auc_interval(np.array([1, 1]), np.array([0.2, 0.3]))[0])
