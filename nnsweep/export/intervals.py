"""95 % intervals for the card's test figures: Wilson (accuracy), DeLong (AUC), bootstrap (errors).

A test split of a few hundred rows moves accuracy by several points between draws; the card
shows how far. Accuracy is a binomial proportion, so it gets the Wilson score interval (good
at small ``n`` and near 0 or 1, where the normal approximation is not). A binary model's ROC
AUC gets DeLong's interval (the default of R's pROC): the AUC is a two-sample U-statistic with
a closed-form variance, so no resampling is needed. Regression errors have no closed form worth
trusting on skewed residuals, so ``mae``, ``rmse`` and ``r2`` get the percentile interval of a
bootstrap over the test rows, seeded so the card is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Z95 = 1.959963984540054  # standard normal quantile at 0.975
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
_CHUNK_VALUES = 4_000_000  # indices drawn per block: bounds memory whatever the test size


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; (0, 1) when ``n`` is 0.

    The interval holds the proportions p for which the score test does not reject:
    ``|successes/n - p| <= z * sqrt(p (1 - p) / n)``.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def delong_auc(y: np.ndarray, score: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(AUC, lower, upper): the ROC AUC of ``score`` for labels ``y`` in {0, 1}, with DeLong's
    normal interval clipped to [0, 1]; NaNs when only one class is present.

    Each positive's placement is the share of negatives scored below it, each negative's the
    share of positives scored above it (ties count half). The AUC is the positives' mean
    placement; its variance is ``var(positive placements) / m + var(negative placements) / n``
    (DeLong, DeLong & Clarke-Pearson, Biometrics 1988). A perfectly separating score has
    placements that do not vary, so its interval is the single point 1.
    """
    labels = np.asarray(y).astype(bool).ravel()
    values = np.asarray(score, dtype=np.float64).ravel()
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels but {len(values)} scores")
    pos, neg = np.sort(values[labels]), np.sort(values[~labels])
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return math.nan, math.nan, math.nan
    below = np.searchsorted(neg, pos, "left")
    tied = np.searchsorted(neg, pos, "right") - below
    v10 = (below + 0.5 * tied) / n  # per positive
    above = m - np.searchsorted(pos, neg, "right")
    tied = np.searchsorted(pos, neg, "right") - np.searchsorted(pos, neg, "left")
    v01 = (above + 0.5 * tied) / m  # per negative
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = z * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def auc_interval(y: np.ndarray, score: np.ndarray) -> tuple[float, float, float, str]:
    """(AUC, lower, upper, method) for the card: DeLong's interval, unless its variance is 0.

    DeLong's variance is 0 when no placement varies: a score that ranks every positive above
    every negative (AUC 1), or below. A zero-width interval would claim certainty that a few
    dozen rows cannot give, so the card then takes the Wilson interval of the AUC as a
    proportion over the smaller class's rows, a conservative stand-in (each of those rows is
    one independent look at the ordering).
    """
    auc, low, high = delong_auc(y, score)
    if not math.isfinite(auc) or high > low:
        return auc, low, high, "DeLong"
    labels = np.asarray(y).astype(bool).ravel()
    smaller = int(min(labels.sum(), (~labels).sum()))
    low, high = wilson(round(auc * smaller), smaller)
    return auc, low, high, f"Wilson over the {smaller:,} rows of the smaller class"


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """``mae``, ``rmse`` and ``r2`` of each row of ``pred`` against the same row of ``y``
    (2-D arrays of resamples; ``r2`` is 0 for a resample whose target is constant)."""
    err = pred - y
    sse = (err**2).sum(axis=1)
    sst = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), 0.0)
    return {
        "mae": np.abs(err).mean(axis=1),
        "rmse": np.sqrt((err**2).mean(axis=1)),
        "r2": r2,
    }


def bootstrap(
    y: np.ndarray,
    pred: np.ndarray,
    scores: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]] = regression_scores,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, tuple[float, float]]:
    """Percentile 95 % intervals of ``scores`` over ``resamples`` bootstrap draws of the rows.

    Rows are drawn with replacement by ``numpy.random.default_rng(seed)``, in blocks so that
    memory stays bounded for a large test split. Empty input gives NaN bounds.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    n = len(y)
    if n == 0:
        return dict.fromkeys(scores(y[None], pred[None]), (math.nan, math.nan))
    rng = np.random.default_rng(seed)
    per_block = max(1, _CHUNK_VALUES // n)
    drawn: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < resamples:
        count = min(per_block, resamples - done)
        index = rng.integers(0, n, size=(count, n))
        for key, values in scores(y[index], pred[index]).items():
            drawn.setdefault(key, []).append(values)
        done += count
    return {
        key: (
            float(np.percentile(np.concatenate(parts), 2.5)),
            float(np.percentile(np.concatenate(parts), 97.5)),
        )
        for key, parts in drawn.items()
    }
