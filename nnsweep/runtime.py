"""Process-level care for a process that trains many models one after another.

Two things grow without bound when one process fits model after model, and
:func:`release_trial_memory` (called after every trial) undoes both:

* **TensorFlow's gradient registry.** Keras' TF optimizer sums gradients through
  ``ReplicaContext.all_reduce`` even without a distribution strategy, and that op is a
  ``tf.custom_gradient``: in graph mode each trace registers a ``CustomGradient-<uid>`` entry in
  TensorFlow's global gradient registry that is never removed. The entry's closure holds the
  traced ``FuncGraph``, so every model's train function (~7,000 Python objects, 20 function
  definitions, ~9 MB of RSS on 2 hidden layers) outlived ``clear_session()``: RSS grew by about
  300 MB over 50 trials. The entries are looked up only while a function is being traced, and
  no trace spans two trials, so dropping them after a trial is safe.
* **The garbage collector's walk.** ``clear_session()`` and ``gc.collect()`` walk every object
  in the process: TensorFlow, Keras, MLflow, SQLAlchemy and matplotlib leave millions of
  long-lived ones, and that walk took ~0.25 s per trial on 2 cores. After the first trial the
  survivors are *frozen* (:func:`gc.freeze`), so later collections only walk what later trials
  created (~0.04 s).

TensorFlow's thread pools are left at their defaults (intra-op and inter-op = cores): on 2
cores, 1/1, 2/1 and 1/2 were measured and none was faster for these MLPs
(docs/benchmarks.md).
"""

from __future__ import annotations

import gc

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"

_frozen = False


def drop_custom_gradients() -> int:
    """Remove TensorFlow's per-trace ``CustomGradient-*`` registrations; return how many."""
    try:
        from tensorflow.python.framework import ops
    except ImportError:  # another Keras backend: nothing registered
        return 0
    registry: dict[str, object] = getattr(ops._gradient_registry, "_registry", {})
    stale = [name for name in registry if name.startswith(CUSTOM_GRADIENT_PREFIX)]
    for name in stale:
        del registry[name]
    return len(stale)


def release_trial_memory() -> None:
    """Free a finished trial's Keras state, graphs and garbage; freeze long-lived objects once."""
    global _frozen
    import keras

    keras.backend.clear_session(free_memory=False)
    drop_custom_gradients()
    gc.collect()
    if not _frozen:
        # Everything alive now (imported modules, stores, the data) lives for the process.
        gc.freeze()
        _frozen = True
