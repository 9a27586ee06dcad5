"""Which devices TensorFlow may use: the CUDA driver check, done without importing TensorFlow."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import MutableMapping

ENABLED_DEVICE_TYPES_ENV = "TF_ENABLED_DEVICE_TYPES"
CUDA_DRIVER_LIBRARY = "libcuda.so.1"


def cuda_driver_available() -> bool:
    """Whether the NVIDIA driver's CUDA library loads, as TensorFlow would load it (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL(CUDA_DRIVER_LIBRARY)
    except OSError:
        return False
    return True


def _has_device_plugins() -> bool:
    """Whether a PluggableDevice package (Intel XPU, …) sits where TensorFlow looks for them."""
    return any(os.path.isdir(os.path.join(p, "tensorflow-plugins")) for p in sys.path if p)


def cpu_only_without_cuda_driver(environ: MutableMapping[str, str] | None = None) -> bool:
    """Restrict TensorFlow to the CPU when no CUDA driver is installed; return whether it did.

    Without the driver, TensorFlow's CUDA build (the ``tensorflow`` wheel on Linux x86-64) still
    initialises its CUDA platform, and its failing ``cuInit`` logs an ERROR line on every run
    (``cuda_platform.cc] failed call to cuInit``) that ``TF_CPP_MIN_LOG_LEVEL=2`` lets through. No
    GPU can be used then anyway, so ``TF_ENABLED_DEVICE_TYPES=CPU`` changes nothing else. Left
    alone when the variable is set already, or a device plugin is installed.
    """
    env = os.environ if environ is None else environ
    if ENABLED_DEVICE_TYPES_ENV in env or not sys.platform.startswith("linux"):
        return False
    if cuda_driver_available() or _has_device_plugins():
        return False
    env[ENABLED_DEVICE_TYPES_ENV] = "CPU"
    return True
