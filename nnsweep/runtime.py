"""Process-level settings for a process that trains many models one after another.

Between trials nnsweep drops the finished model with ``keras.backend.clear_session()``, whose
``gc.collect()`` walks every object in the process: TensorFlow, Keras, MLflow, SQLAlchemy and
matplotlib leave millions of long-lived objects, so that walk took ~0.25 s per trial on 2
cores. :func:`release_trial_memory` collects once after the first trial and then *freezes* the
survivors (:func:`gc.freeze`): later collections only walk what later trials created, which
still frees each trial's graphs and models (~0.04 s).

TensorFlow's thread pools are left at their defaults (intra-op and inter-op = cores): on 2
cores, 1/1, 2/1 and 1/2 were measured and none was faster for these MLPs
(docs/benchmarks.md).
"""

from __future__ import annotations

import gc

_frozen = False


def release_trial_memory() -> None:
    """Free a finished trial's Keras state and garbage; freeze long-lived objects once."""
    global _frozen
    import keras

    keras.backend.clear_session(free_memory=False)
    gc.collect()
    if not _frozen:
        # Everything alive now (imported modules, stores, the data) lives for the process.
        gc.freeze()
        _frozen = True
