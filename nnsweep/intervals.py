"""95 % intervals for the card's test figures: Wilson for accuracy, a seeded bootstrap otherwise.

A test split of a few hundred rows moves accuracy by several points between draws; the card
shows how far. Accuracy is a binomial proportion, so it gets the Wilson score interval (good
at small ``n`` and near 0 or 1, where the normal approximation is not). Regression errors have
no closed form worth trusting on skewed residuals, so ``mae``, ``rmse`` and ``r2`` get the
percentile interval of a bootstrap over the test rows, seeded so the card is reproducible.
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
