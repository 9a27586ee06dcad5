"""CPU timing of model calls: the core the export card and the ``latency`` objective share.

:func:`time_calls` times repeated calls of one function (after untimed warm-up calls, under a
time cap) and :func:`latency_summary` reads p50/p99 off the durations; :func:`cores` says how
many CPU cores bound the figures. The card (:mod:`nnsweep.export.latency`) times a few hundred
one-row calls of the exported model; a sweep with ``objective.also: latency`` times
:data:`TRIAL_CALLS` calls of each trial's freshly built model (:func:`trial_latency_ms`) through
the same path: one raw training row → model inputs → model → original labels
(:func:`nnsweep.track.pyfunc.predict_frame`). Only the model's weights differ (untrained ones,
which cost the same time as trained ones of the same architecture).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nnsweep.data.load import Dataset

WARMUP_CALLS = 10
TIME_CAP_S = 30.0
# per trial: fewer calls than the card's, so the objective costs well under a second a trial
TRIAL_CALLS = 50
TRIAL_WARMUP = 5
TRIAL_CAP_S = 5.0


def time_calls(
    fn: Callable[[], Any], calls: int, *, warmup: int = WARMUP_CALLS, cap_s: float = TIME_CAP_S
) -> np.ndarray:
    """Seconds each of up to ``calls`` calls of ``fn`` took (after ``warmup`` untimed calls),
    stopping once ``cap_s`` seconds of timed calls have passed (at least one call runs)."""
    for _ in range(warmup):
        fn()
    clock = time.perf_counter
    took: list[float] = []
    deadline = clock() + cap_s
    for _ in range(max(calls, 1)):
        start = clock()
        fn()
        end = clock()
        took.append(end - start)
        if end > deadline:
            break
    return np.asarray(took, dtype=np.float64)


def latency_summary(seconds: np.ndarray) -> dict[str, Any]:
    """p50 and p99 (milliseconds) of call durations, and how many calls they cover."""
    return {
        "p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "p99_ms": float(np.percentile(seconds, 99) * 1e3),
        "calls": int(len(seconds)),
    }


def cores() -> dict[str, int | None]:
    """Logical CPU cores of the machine, and those this process may run on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu_count": os.cpu_count(), "usable_cores": usable}


def trial_latency_ms(model: Any, data: Dataset, *, calls: int = TRIAL_CALLS) -> float:
    """p50 milliseconds of one-row calls of a trial's ``model`` (see the module docstring):
    the first training row of ``data``, as raw rows, through rows → inputs → model → labels."""
    from nnsweep.data.features import take_rows
    from nnsweep.data.modelio import ModelIO
    from nnsweep.data.rowmodel import LoadedModel
    from nnsweep.track.pyfunc import predict_frame, raw_example

    io = ModelIO.of(data)
    row = raw_example(io, take_rows(data.x_train, np.arange(1)))
    loaded = LoadedModel(model, io, "trial")
    took = time_calls(
        lambda: predict_frame(loaded, row), calls, warmup=TRIAL_WARMUP, cap_s=TRIAL_CAP_S
    )
    return float(latency_summary(took)["p50_ms"])
