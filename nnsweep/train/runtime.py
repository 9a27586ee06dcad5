"""Process-level care: TensorFlow's log noise kept off the terminal, and no growth across trials.

**Quiet.** :func:`quiet_native_logs` (called by the CLI first thing, skipped with ``--debug``)
keeps TensorFlow's C++ log lines off the terminal. ``TF_CPP_MIN_LOG_LEVEL=2`` silences the lines
TensorFlow logs once its logging is set up (``cpu_feature_guard``, XLA's ``service.cc``…), but
not those that its shared libraries log while they load, before ``absl::InitializeLog()`` (TF
2.21 on x86-64: ``WARNING: All log messages before absl::InitializeLog() …`` and
``I0000 … port.cc] oneDNN custom operations are on …``, once per library, and
``cudart_stub.cc] Could not find cuda drivers …`` without a GPU). The only switch TensorFlow
offers for the oneDNN line is ``TF_ENABLE_ONEDNN_OPTS=0``, which turns oneDNN off and changes
numerics and speed; so instead the import of ``tensorflow`` runs with file descriptor 2 sent to a
temporary file, and what it wrote comes back afterwards less the INFO/WARNING log lines:
errors, Python warnings and anything else still reach stderr, in order. Worker processes run
the same CLI entry, and inherit ``TF_CPP_MIN_LOG_LEVEL``. Without a CUDA driver the import also
restricts TensorFlow to the CPU (:func:`nnsweep.train.devices.cpu_only_without_cuda_driver`), which
stops the ``failed call to cuInit`` ERROR line that its CUDA build logs on every run.

**Memory.** Two things grow without bound when one process fits model after model, and
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

**Threads.** A single process leaves TensorFlow's thread pools at their defaults (intra-op and
inter-op = cores): on 2 cores, 1/1, 2/1 and 1/2 were measured and none was faster for these
MLPs (docs/benchmarks.md). Workers of ``--jobs N`` share the cores instead: each starts with
its budget in the environment, applied right after the import (:func:`apply_thread_budget`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"
TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
TF_LOG_LEVEL_QUIET = "2"  # errors only

# Log lines below ERROR, in absl's format (TF >= 2.18: "I0000 00:00:1795461611.351498   12095
# port.cc:153] …") and in TF's own (<= 2.17: "2026-11-23 19:52:40.737613: I tensorflow/…"); absl's
# banner before its first pre-initialisation line; and TF 2.16-2.17's duplicate CUDA factory
# registrations, logged as errors but harmless ("Unable to register cuDNN factory: Attempting to
# register factory for plugin cuDNN when one has already been registered").
_NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?:[IW] |E .*\] Unable to register cu\w+ factory: "
    rb"Attempting to register factory for plugin)"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)

_TF_OPS_MODULE = "tensorflow.python.framework.ops"

_frozen = False
_registry_warned = False


def drop_native_log_lines(data: bytes) -> bytes:
    """``data`` less its C++ INFO/WARNING log lines and absl's pre-initialisation banner."""
    return b"".join(
        line for line in data.splitlines(keepends=True) if not _NOISE.match(line.lstrip(b"\r"))
    )


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Within the block, what anything in the process writes to fd 2 is held back, then written
    out less its C++ INFO/WARNING log lines. Without a usable fd 2 it does nothing."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = drop_native_log_lines(sink.read())
            if kept:
                os.write(2, kept)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``tensorflow`` through the other finders and runs its import filtered."""

    _loader: importlib.abc.Loader

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        uninstall_quiet_import()  # one import; the other finders find the real spec
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # TensorFlow sees its own loader, as if nothing had come between
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        from nnsweep.train.devices import cpu_only_without_cuda_driver

        cpu_only_without_cuda_driver()
        with native_stderr_filtered():
            self._loader.exec_module(module)
        apply_thread_budget(module)


_hook = _QuietTensorFlowImport()


def apply_thread_budget(tf: ModuleType) -> tuple[int, int]:
    """Set TensorFlow's intra-/inter-op threads from ``TF_NUM_INTRAOP_THREADS`` and
    ``TF_NUM_INTEROP_THREADS`` (a worker's budget, see :mod:`nnsweep.train.devices`); return them.

    TensorFlow's runtime reads the same variables itself; setting them through ``tf.config``
    too, right after the import and before any op, makes the budget hold whichever TensorFlow
    build is installed. Unset (or invalid) variables leave TensorFlow's defaults (0).
    """
    from nnsweep.train.devices import INTER_OP_ENV, INTRA_OP_ENV

    def wanted(name: str) -> int:
        value = os.environ.get(name, "")
        return int(value) if value.isdigit() else 0

    intra, inter = wanted(INTRA_OP_ENV), wanted(INTER_OP_ENV)
    threading = getattr(getattr(tf, "config", None), "threading", None)
    if threading is None:
        return 0, 0
    with contextlib.suppress(RuntimeError):  # already initialised: keeps what it has
        if intra:
            threading.set_intra_op_parallelism_threads(intra)
        if inter:
            threading.set_inter_op_parallelism_threads(inter)
    return intra, inter


def uninstall_quiet_import() -> None:
    """Remove the import hook that :func:`quiet_native_logs` installs (no error if absent)."""
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_hook)


def quiet_native_logs(debug: bool = False) -> bool:
    """Keep TensorFlow's C++ log lines off the terminal; return whether quieting is on.

    Call it before anything imports TensorFlow (the CLI does, first thing). Sets
    ``TF_CPP_MIN_LOG_LEVEL=2`` unless the environment sets it, and filters the import of
    ``tensorflow`` (see the module docstring). With ``debug`` it does neither, and removes the
    import hook an earlier call installed. Numerics are untouched: oneDNN stays on.
    """
    uninstall_quiet_import()
    if debug:
        return False
    os.environ.setdefault(TF_LOG_LEVEL_ENV, TF_LOG_LEVEL_QUIET)
    if "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _hook)
    return True


def _warn_registry_missing(why: str) -> None:
    global _registry_warned
    if _registry_warned:
        return
    _registry_warned = True
    warnings.warn(
        f"TensorFlow {why}, so each trial's traced graphs stay in memory (~6 MB per trial); "
        "nnsweep.train.runtime.drop_custom_gradients needs updating for this TensorFlow",
        RuntimeWarning,
        stacklevel=3,
    )


def drop_custom_gradients() -> int:
    """Remove TensorFlow's per-trace ``CustomGradient-*`` registrations; return how many.

    Reaches into ``tensorflow.python.framework.ops._gradient_registry._registry``, a private
    dict that has no public counterpart. When a TensorFlow release moves it, this warns once
    (:class:`RuntimeWarning`) and does nothing: sweeps still run, only the memory grows.
    """
    ops = sys.modules.get(_TF_OPS_MODULE)
    if ops is None:  # TensorFlow not loaded (another Keras backend): nothing registered
        return 0
    holder = getattr(ops, "_gradient_registry", None)
    if holder is None:
        _warn_registry_missing(f"has no {_TF_OPS_MODULE}._gradient_registry")
        return 0
    registry = getattr(holder, "_registry", None)
    if not isinstance(registry, dict):
        _warn_registry_missing(f"has no dict at {_TF_OPS_MODULE}._gradient_registry._registry")
        return 0
    stale = [name for name in registry if str(name).startswith(CUSTOM_GRADIENT_PREFIX)]
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
