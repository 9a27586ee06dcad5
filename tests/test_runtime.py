"""Memory care between trials: no traced graph of a finished trial survives it."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from nnsweep.model import HyperParams, build_model
from nnsweep.runtime import drop_custom_gradients, release_trial_memory

pytestmark = pytest.mark.slow  # every test here fits Keras models


def _fit_one(units: int) -> None:
    rng = np.random.default_rng(units)
    x = rng.random((256, 784), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    model = build_model(HyperParams(n_layers=1, units=(units,)))
    model.fit(x, y, validation_data=(x[:64], y[:64]), epochs=1, batch_size=64, verbose=0)


def _func_graphs() -> int:
    return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())


def test_a_fit_registers_custom_gradients_that_drop_removes() -> None:
    _fit_one(8)
    assert drop_custom_gradients() >= 1  # Keras' optimizer all-reduce, one per trace
    assert drop_custom_gradients() == 0


def test_finished_trials_leave_no_traced_graphs_behind() -> None:
    _fit_one(16)
    release_trial_memory()
    baseline = _func_graphs()
    for units in (24, 32, 40):
        _fit_one(units)
        release_trial_memory()
    assert _func_graphs() <= baseline
