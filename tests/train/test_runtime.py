"""Process care: TensorFlow's C++ log lines stay off stderr; no traced graph outlives a trial."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nnsweep.train import runtime
from nnsweep.train.model import HyperParams, build_model
from nnsweep.train.runtime import (
    drop_custom_gradients,
    drop_native_log_lines,
    native_stderr_filtered,
    quiet_native_logs,
    release_trial_memory,
)

# What TensorFlow's libraries print on their own: any absl/glog line, whatever its severity.
NATIVE_LOG = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:|absl::InitializeLog|oneDNN custom operations", re.M
)
# Variables that would decide the outcome instead of nnsweep (conftest sets the first two).
_TF_ENV = ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "TF_ENABLED_DEVICE_TYPES")


def _fit_one(units: int) -> None:
    rng = np.random.default_rng(units)
    x = rng.random((256, 784), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    model = build_model(HyperParams(n_layers=1, units=(units,)))
    model.fit(x, y, validation_data=(x[:64], y[:64]), epochs=1, batch_size=64, verbose=0)


def _func_graphs() -> int:
    return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())


@pytest.mark.slow
def test_a_fit_registers_custom_gradients_that_drop_removes() -> None:
    _fit_one(8)
    assert drop_custom_gradients() >= 1  # Keras' optimizer all-reduce, one per trace
    assert drop_custom_gradients() == 0


@pytest.mark.slow
def test_finished_trials_leave_no_traced_graphs_behind() -> None:
    _fit_one(16)
    release_trial_memory()
    baseline = _func_graphs()
    for units in (24, 32, 40):
        _fit_one(units)
        release_trial_memory()
    assert _func_graphs() <= baseline


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (
            b"WARNING: All log messages before absl::InitializeLog() is called are written to "
            b"STDERR\n",
            False,
        ),
        (
            b"I0000 00:00:1795461611.351498   12095 port.cc:153] oneDNN custom operations on\n",
            False,
        ),
        (b"W0000 00:00:1795461611.366427   12095 cudart_stub.cc:31] Could not find cuda\n", False),
        (
            b"I1123 19:17:18.667571    8942 cpu_feature_guard.cc:227] This TensorFlow binary\n",
            False,
        ),
        (
            b"E0000 00:00:1795462124.545621   24103 cuda_platform.cc:52] failed call to cuInit\n",
            True,
        ),
        (b"F0000 00:00:1795462124.545621   24103 x.cc:1] Check failed\n", True),
        (b"/x/y.py:3: DeprecationWarning: old\n", True),
        (b"I0000 is not a log line\n", True),
        # TensorFlow <= 2.17's own format
        (b"2026-11-23 19:52:40.737613: I tensorflow/core/util/port.cc:113] oneDNN on\n", False),
        (b"2026-11-23 19:52:42.010920: W tensorflow/x/py_utils.cc:38] TF-TRT Warning\n", False),
        (
            b"2026-11-23 19:52:40.783920: E external/local_xla/xla/cuda_dnn.cc:10575] Unable to "
            b"register cuDNN factory: Attempting to register factory for plugin cuDNN when\n",
            False,
        ),
        (b"2026-11-23 19:52:40.783920: E tensorflow/core/x.cc:1] Op failed\n", True),
        (b"trial   0 COMPLETE val_accuracy=0.7875\n", True),
    ],
)
def test_drop_native_log_lines_keeps_errors_and_everything_else(line: bytes, kept: bool) -> None:
    assert drop_native_log_lines(b"before\n" + line + b"after") == (
        b"before\n" + (line if kept else b"") + b"after"
    )


def test_native_stderr_filtered_writes_the_rest_back_in_order(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with native_stderr_filtered():
        os.write(2, b"one\n")
        os.write(2, b"I0000 00:00:17.1   1 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"two\n")
        os.write(2, b"E0000 00:00:17.1   1 a.cc:1] real error\n")
    assert capfd.readouterr().err == "one\ntwo\nE0000 00:00:17.1   1 a.cc:1] real error\n"


def test_debug_removes_the_import_hook_and_leaves_the_log_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as before any import
    assert quiet_native_logs(debug=False)
    assert sys.meta_path[0] is runtime._hook and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    quiet_native_logs(debug=False)
    assert sys.meta_path.count(runtime._hook) == 1
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert not quiet_native_logs(debug=True)
    assert runtime._hook not in sys.meta_path and "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def _env_without_tf_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _TF_ENV}


def _import_tensorflow(debug: bool) -> str:
    code = (
        "from nnsweep.train.runtime import quiet_native_logs\n"
        f"quiet_native_logs(debug={debug})\n"
        "import keras\n"
        "keras.ops.convert_to_tensor([1.0]) + 1.0\n"  # initialises the devices too
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=_env_without_tf_settings(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.slow  # two TensorFlow imports, ~10 s
def test_quiet_hides_what_tensorflow_prints_and_debug_shows_it() -> None:
    loud = _import_tensorflow(debug=True)
    if not NATIVE_LOG.search(loud):
        pytest.skip("this TensorFlow build prints no log line while it loads")
    quiet = _import_tensorflow(debug=False)
    assert not NATIVE_LOG.search(quiet), quiet


@pytest.mark.slow  # two TensorFlow imports
@pytest.mark.parametrize(
    ("budget", "expected"),
    [({"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}, "1 1"), ({}, "0 0")],
)
def test_a_workers_thread_budget_is_set_right_after_the_tensorflow_import(
    budget: dict[str, str], expected: str
) -> None:
    code = (
        "from nnsweep.train.runtime import quiet_native_logs; quiet_native_logs(); "
        "import tensorflow as tf; t = tf.config.threading; "
        "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())"
    )
    env = {**_env_without_tf_settings(), **budget}
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        if name not in budget:
            env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-2] == expected


@pytest.mark.slow  # trains
def test_a_sweep_from_the_cli_prints_no_tensorflow_log_line(
    write_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    sweep = write_sweep(train={"epochs": 1, "batch_size": 128})
    cmd = [sys.executable, "-m", "nnsweep", "run", str(sweep), "--trials", "2", "--quiet"]
    cmd += ["--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]
    cmd += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    proc = subprocess.run(
        cmd, env=_env_without_tf_settings(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 COMPLETE in total" in proc.stdout
    assert not NATIVE_LOG.search(proc.stderr), proc.stderr


def test_drop_custom_gradients_removes_only_custom_gradient_entries() -> None:
    from tensorflow.python.framework import ops

    @ops.RegisterGradient("CustomGradient-nnsweep-test")
    def _grad(op: object, grad: object) -> object:
        return grad

    assert "CustomGradient-nnsweep-test" in ops._gradient_registry._registry
    assert drop_custom_gradients() >= 1
    assert "CustomGradient-nnsweep-test" not in ops._gradient_registry._registry
    assert "MatMul" in ops._gradient_registry._registry  # TensorFlow's own gradients stay


class _NoRegistryDict:
    """A gradient registry as a TensorFlow that renamed ``_registry`` would have it."""


@pytest.mark.parametrize(
    ("attribute", "replacement"),
    [("_gradient_registry", None), ("_gradient_registry", _NoRegistryDict())],
    ids=["registry-gone", "registry-dict-gone"],
)
def test_a_moved_gradient_registry_warns_once_and_drops_nothing(
    monkeypatch: pytest.MonkeyPatch, attribute: str, replacement: object
) -> None:
    from tensorflow.python.framework import ops

    monkeypatch.setattr(runtime, "_registry_warned", False)
    if replacement is None:
        monkeypatch.delattr(ops, attribute)
    else:
        monkeypatch.setattr(ops, attribute, replacement)
    with pytest.warns(RuntimeWarning, match="drop_custom_gradients needs updating") as first:
        assert drop_custom_gradients() == 0
    assert len(first) == 1
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        assert drop_custom_gradients() == 0
        assert drop_custom_gradients() == 0
    assert not [w for w in later if issubclass(w.category, RuntimeWarning)]


def test_without_tensorflow_loaded_there_is_nothing_to_drop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "_registry_warned", False)
    monkeypatch.delitem(sys.modules, "tensorflow.python.framework.ops")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert drop_custom_gradients() == 0
