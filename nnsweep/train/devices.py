"""Which devices each process trains on: GPUs, one per worker, and a CPU thread budget per worker.

Nothing here imports TensorFlow except :func:`enable_memory_growth`, so the process that plans
``--jobs`` stays light, and CUDA is never required: without a GPU every plan is a CPU plan.

API, for the CLI and the worker launcher:

* :func:`available_cores` — the CPUs this process may use (affinity mask and cgroup quota).
* :func:`available_memory` — bytes of memory available now (Linux), or ``None``.
* :func:`visible_gpus` — the GPU ids this process may use, as ``CUDA_VISIBLE_DEVICES`` names
  them: the parent's ``CUDA_VISIBLE_DEVICES`` when set, else ``0..n-1`` counted by
  ``nvidia-smi`` (or ``/proc/driver/nvidia/gpus``); ``()`` without a CUDA driver.
* :func:`parse_gpus` — the ``--gpus`` option: ``auto`` (every visible GPU), ``none``, or ids
  such as ``0,1``; raises :class:`~nnsweep.errors.SpecError` for ids that are not visible.
* :func:`auto_jobs` — ``--jobs auto``: one worker per GPU when there are GPUs; otherwise as many
  workers as the cores allow, each given 1, 2 or 4 cores by the model's size
  (:data:`CORES_PER_WORKER`), capped by the trials wanted and by memory (:data:`WORKER_MEMORY`).
* :func:`thread_budget` — each worker's TensorFlow intra-op/inter-op threads, so that ``jobs``
  workers never ask for more threads than there are cores; ``(0, 0)`` (TensorFlow's defaults)
  for a single process, which keeps ``--jobs 1`` exactly as before.
* :func:`gpu_for_worker` — worker ``i`` gets ``gpus[i % len(gpus)]``.
* :func:`plan_workers` → :class:`WorkerPlan`; ``plan.env(i)`` is the environment worker ``i``
  must start with (before it imports TensorFlow): ``CUDA_VISIBLE_DEVICES`` (one GPU, or ``""``
  for none), ``TF_FORCE_GPU_ALLOW_GROWTH=true``, ``TF_NUM_INTRAOP_THREADS``,
  ``TF_NUM_INTEROP_THREADS`` and ``OMP_NUM_THREADS``.
* :func:`enable_memory_growth` — memory growth on every GPU of a process that imports
  TensorFlow anyway (the ``--jobs 1`` path); workers get it from ``TF_FORCE_GPU_ALLOW_GROWTH``.
* :func:`cpu_only_without_cuda_driver` — keeps TensorFlow's CUDA build from logging a failed
  ``cuInit`` on machines without a driver (called by :mod:`nnsweep.train.runtime`).

Example::

    plan = plan_workers("auto", cores=available_cores(), gpus=parse_gpus("auto", visible_gpus()),
                        n_params=count_params(largest_hp), trials=spec.trials)
    for i in range(plan.jobs):
        subprocess.Popen(cmd, env={**os.environ, **plan.env(i)})
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal

from nnsweep.errors import SpecError

ENABLED_DEVICE_TYPES_ENV = "TF_ENABLED_DEVICE_TYPES"
CUDA_VISIBLE_DEVICES_ENV = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER_ENV = "CUDA_DEVICE_ORDER"
ALLOW_GROWTH_ENV = "TF_FORCE_GPU_ALLOW_GROWTH"
INTRA_OP_ENV = "TF_NUM_INTRAOP_THREADS"
INTER_OP_ENV = "TF_NUM_INTEROP_THREADS"
OMP_THREADS_ENV = "OMP_NUM_THREADS"
CUDA_DRIVER_LIBRARY = "libcuda.so.1"

# Cores one worker gets by the model's trainable parameters: a small MLP's steps are too short
# to keep two threads busy, so side-by-side trials use the cores better than intra-op threads.
CORES_PER_WORKER: tuple[tuple[int, int], ...] = ((1_000_000, 1), (10_000_000, 2))
CORES_PER_LARGE_WORKER = 4
# Resident memory of one worker process: 953 MiB after 50 quickstart trials (docs/benchmarks.md,
# tensorflow-cpu), ~100 MiB more with the tensorflow wheel; 1.25 GiB leaves some headroom.
WORKER_MEMORY = 5 << 28


@dataclass(frozen=True)
class ThreadBudget:
    """TensorFlow's thread pools for one worker; 0 leaves TensorFlow's default (all cores)."""

    intra_op: int
    inter_op: int


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers run side by side, their threads and the GPUs they take turns on."""

    jobs: int
    threads: ThreadBudget
    gpus: tuple[str, ...] = ()

    def env(self, index: int, parent: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables worker ``index`` starts with, over ``parent`` (``os.environ``)."""
        parent = os.environ if parent is None else parent
        env: dict[str, str] = {}
        gpu = gpu_for_worker(index, self.gpus)
        env[CUDA_VISIBLE_DEVICES_ENV] = gpu or ""
        if gpu is not None:
            env[ALLOW_GROWTH_ENV] = "true"
            if CUDA_VISIBLE_DEVICES_ENV not in parent and CUDA_DEVICE_ORDER_ENV not in parent:
                # ids counted by nvidia-smi are in PCI bus order; CUDA's default order differs
                env[CUDA_DEVICE_ORDER_ENV] = "PCI_BUS_ID"
        if self.threads.intra_op:
            env[INTRA_OP_ENV] = str(self.threads.intra_op)
            env[OMP_THREADS_ENV] = str(self.threads.intra_op)
        if self.threads.inter_op:
            env[INTER_OP_ENV] = str(self.threads.inter_op)
        return env


def cgroup_cpu_limit(cpu_max: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line (``"150000 100000"`` → 1.5; ``max`` → None)."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            limit = cgroup_cpu_limit(fh.read())
    except OSError:
        limit = None
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    return max(1, cores)


def available_memory() -> int | None:
    """Bytes of memory available for new processes (``MemAvailable``), or None off Linux."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cuda_driver_available() -> bool:
    """Whether the NVIDIA driver's CUDA library loads, as TensorFlow would load it (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL(CUDA_DRIVER_LIBRARY)
    except OSError:
        return False
    return True


def count_nvidia_gpus() -> int:
    """GPUs the NVIDIA driver lists (``nvidia-smi -L``, else ``/proc/driver/nvidia/gpus``)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "-L"], capture_output=True, text=True, timeout=30, check=True
            ).stdout
            return sum(line.startswith("GPU ") for line in out.splitlines())
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def visible_gpus(
    environ: Mapping[str, str] | None = None,
    *,
    driver: Callable[[], bool] = cuda_driver_available,
    count: Callable[[], int] = count_nvidia_gpus,
) -> tuple[str, ...]:
    """GPU ids this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (no TF import)."""
    env = os.environ if environ is None else environ
    if not driver():
        return ()
    listed = env.get(CUDA_VISIBLE_DEVICES_ENV)
    if listed is None:
        return tuple(str(i) for i in range(count()))
    ids: list[str] = []
    for item in (part.strip() for part in listed.split(",")):
        if not item or item.startswith("-"):  # CUDA stops at the first invalid entry
            break
        ids.append(item)
    return tuple(ids)


def parse_gpus(value: str, visible: Sequence[str]) -> tuple[str, ...]:
    """The ``--gpus`` option: ``auto`` → every visible GPU, ``none`` → (), or ``0,1``…"""
    text = value.strip()
    if text.lower() == "auto":
        return tuple(visible)
    if text.lower() == "none":
        return ()
    shown = ", ".join(visible) or "none"
    ids = tuple(part.strip() for part in text.split(","))
    if not all(ids):
        raise SpecError(f"--gpus: {value!r} has an empty entry; give auto, none or ids like 0,1")
    if len(set(ids)) != len(ids):
        raise SpecError(f"--gpus: {value!r} names a GPU twice; workers take turns on the list")
    unknown = [i for i in ids if i not in visible]
    if unknown:
        raise SpecError(
            f"--gpus: {', '.join(unknown)} is not a visible GPU (visible: {shown}); "
            "give auto, none or some of the visible ids"
        )
    return ids


def cores_per_worker(n_params: int) -> int:
    """Cores one worker training a model of ``n_params`` parameters gets (see CORES_PER_WORKER)."""
    for bound, cores in CORES_PER_WORKER:
        if n_params < bound:
            return cores
    return CORES_PER_LARGE_WORKER


def auto_jobs(
    *,
    cores: int,
    gpus: Sequence[str],
    n_params: int,
    trials: int | None = None,
    memory: int | None = None,
) -> int:
    """``--jobs auto``: workers to run side by side on this machine (at least 1)."""
    if gpus:
        jobs = min(len(gpus), max(1, cores))  # one GPU per worker, and a core to feed it
    else:
        jobs = max(1, cores) // cores_per_worker(n_params)
    if trials is not None:
        jobs = min(jobs, trials)
    if memory is not None:
        jobs = min(jobs, memory // WORKER_MEMORY)
    return max(1, jobs)


def thread_budget(cores: int, jobs: int) -> ThreadBudget:
    """TensorFlow threads per worker so ``jobs`` workers share ``cores`` without oversubscribing.

    A single process keeps TensorFlow's defaults (``ThreadBudget(0, 0)``): its results and
    speed stay as they were. Side by side, each worker gets ``cores // jobs`` intra-op threads
    (at least 1) and one inter-op thread: an MLP's graph is a chain, with nothing to overlap.
    """
    if jobs <= 1:
        return ThreadBudget(0, 0)
    return ThreadBudget(max(1, cores // jobs), 1)


def gpu_for_worker(index: int, gpus: Sequence[str]) -> str | None:
    """The GPU worker ``index`` trains on (round robin over ``gpus``), or None for the CPU."""
    return gpus[index % len(gpus)] if gpus else None


def plan_workers(
    jobs: int | Literal["auto"],
    *,
    cores: int,
    gpus: Sequence[str] = (),
    n_params: int = 0,
    trials: int | None = None,
    memory: int | None = None,
) -> WorkerPlan:
    """Workers, thread budget and GPUs for ``--jobs`` (a count or ``"auto"``)."""
    if jobs == "auto":
        jobs = auto_jobs(cores=cores, gpus=gpus, n_params=n_params, trials=trials, memory=memory)
    elif not isinstance(jobs, int) or jobs < 1:
        raise SpecError(f"--jobs: must be 'auto' or a whole number >= 1, but got {jobs!r}")
    return WorkerPlan(jobs=jobs, threads=thread_budget(cores, jobs), gpus=tuple(gpus))


def enable_memory_growth() -> int:
    """Turn memory growth on for every GPU TensorFlow sees; return how many (0 on CPU).

    Imports TensorFlow: call it only where TensorFlow is being imported anyway, before the
    first model is built (a GPU already initialised keeps its setting).
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    done = 0
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
            done += 1
        except RuntimeError:  # already initialised: it keeps what it has
            pass
    return done


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
