"""Device planning: GPUs found and shared out, --jobs auto, and each worker's thread budget."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

from nnsweep.errors import SpecError
from nnsweep.train import devices
from nnsweep.train.devices import (
    CORES_PER_WORKER,
    WORKER_MEMORY,
    ThreadBudget,
    WorkerPlan,
    auto_jobs,
    available_cores,
    available_memory,
    cgroup_cpu_limit,
    cores_per_worker,
    cpu_only_without_cuda_driver,
    cuda_driver_available,
    enable_memory_growth,
    gpu_for_worker,
    parse_gpus,
    plan_workers,
    thread_budget,
    visible_gpus,
)

SMALL = 300_000  # the quickstart's largest MLP: 784-256-256-256-10
MEDIUM = 5_000_000
LARGE = 50_000_000


@pytest.mark.parametrize(
    ("cores", "jobs", "expected"),
    [
        (2, 1, ThreadBudget(0, 0)),  # one process: TensorFlow's defaults, as before
        (16, 1, ThreadBudget(0, 0)),
        (2, 2, ThreadBudget(1, 1)),
        (16, 2, ThreadBudget(8, 1)),
        (16, 3, ThreadBudget(5, 1)),
        (16, 16, ThreadBudget(1, 1)),
        (2, 4, ThreadBudget(1, 1)),  # more workers than cores: one thread each, no more
    ],
)
def test_thread_budget(cores: int, jobs: int, expected: ThreadBudget) -> None:
    assert thread_budget(cores, jobs) == expected


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16, 64])
@pytest.mark.parametrize("jobs", [2, 3, 5, 8, 16])
def test_side_by_side_workers_never_oversubscribe_the_cores(cores: int, jobs: int) -> None:
    budget = thread_budget(cores, jobs)
    assert budget.inter_op == 1 and budget.intra_op >= 1
    if jobs <= cores:
        assert jobs * budget.intra_op <= cores


@pytest.mark.parametrize(
    ("n_params", "cores"),
    [(0, 1), (SMALL, 1), (999_999, 1), (1_000_000, 2), (MEDIUM, 2), (10_000_000, 4), (LARGE, 4)],
)
def test_cores_per_worker_grows_with_the_model(n_params: int, cores: int) -> None:
    assert cores_per_worker(n_params) == cores
    assert CORES_PER_WORKER == tuple(sorted(CORES_PER_WORKER))


@pytest.mark.parametrize(
    ("kwargs", "jobs"),
    [
        ({"cores": 2, "gpus": (), "n_params": SMALL}, 2),  # small MLPs fill 2 cores side by side
        ({"cores": 1, "gpus": (), "n_params": SMALL}, 1),
        ({"cores": 16, "gpus": (), "n_params": SMALL}, 16),
        ({"cores": 16, "gpus": (), "n_params": MEDIUM}, 8),
        ({"cores": 16, "gpus": (), "n_params": LARGE}, 4),
        ({"cores": 2, "gpus": (), "n_params": LARGE}, 1),  # never 0
        ({"cores": 16, "gpus": ("0", "1"), "n_params": SMALL}, 2),  # one worker per GPU
        ({"cores": 16, "gpus": ("0", "1", "2", "3"), "n_params": LARGE}, 4),
        ({"cores": 2, "gpus": ("0", "1", "2", "3"), "n_params": SMALL}, 2),  # a core per GPU
        ({"cores": 16, "gpus": (), "n_params": SMALL, "trials": 4}, 4),
        ({"cores": 16, "gpus": (), "n_params": SMALL, "trials": 1}, 1),
        ({"cores": 16, "gpus": (), "n_params": SMALL, "memory": 3 * WORKER_MEMORY + 1}, 3),
        ({"cores": 16, "gpus": (), "n_params": SMALL, "memory": WORKER_MEMORY // 2}, 1),
    ],
)
def test_auto_jobs(kwargs: dict[str, object], jobs: int) -> None:
    assert auto_jobs(**kwargs) == jobs  # type: ignore[arg-type]


def test_gpus_are_dealt_round_robin() -> None:
    assert [gpu_for_worker(i, ("0", "1")) for i in range(5)] == ["0", "1", "0", "1", "0"]
    assert [gpu_for_worker(i, ("3",)) for i in range(3)] == ["3", "3", "3"]
    assert gpu_for_worker(0, ()) is None


def test_plan_auto_on_two_cores_without_gpus() -> None:
    plan = plan_workers("auto", cores=2, n_params=SMALL, trials=12)
    assert plan == WorkerPlan(jobs=2, threads=ThreadBudget(1, 1), gpus=())
    env = plan.env(1, parent={})
    assert env == {
        "CUDA_VISIBLE_DEVICES": "",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def test_plan_with_two_gpus_gives_each_worker_one_with_memory_growth() -> None:
    plan = plan_workers(4, cores=16, gpus=("0", "1"))
    envs = [plan.env(i, parent={}) for i in range(4)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1"]
    assert all(e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for e in envs)
    assert all(e["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for e in envs)  # nvidia-smi's numbering
    assert all(e["TF_NUM_INTRAOP_THREADS"] == "4" for e in envs)


def test_ids_from_the_parents_cuda_visible_devices_keep_its_order() -> None:
    plan = plan_workers(2, cores=4, gpus=("2", "3"))
    env = plan.env(1, parent={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and "CUDA_DEVICE_ORDER" not in env


def test_a_single_process_plan_sets_no_threads() -> None:
    plan = plan_workers(1, cores=16, gpus=("0",))
    assert plan.threads == ThreadBudget(0, 0)
    env = plan.env(0, parent={})
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert not {"TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"} & set(env)


@pytest.mark.parametrize("jobs", [0, -1, "many", 2.5])
def test_plan_refuses_a_bad_jobs_value(jobs: object) -> None:
    with pytest.raises(SpecError, match="--jobs: must be 'auto' or a whole number >= 1"):
        plan_workers(jobs, cores=2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("environ", "count", "expected"),
    [
        ({}, 2, ("0", "1")),
        ({}, 0, ()),
        ({"CUDA_VISIBLE_DEVICES": ""}, 2, ()),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 2, ()),
        ({"CUDA_VISIBLE_DEVICES": "1,3"}, 4, ("1", "3")),
        ({"CUDA_VISIBLE_DEVICES": "0, 2"}, 4, ("0", "2")),
        ({"CUDA_VISIBLE_DEVICES": "0,-1,2"}, 4, ("0",)),  # CUDA stops at the first invalid id
        ({"CUDA_VISIBLE_DEVICES": "GPU-5c1e1f2a"}, 1, ("GPU-5c1e1f2a",)),
    ],
)
def test_visible_gpus(environ: dict[str, str], count: int, expected: tuple[str, ...]) -> None:
    assert visible_gpus(environ, driver=lambda: True, count=lambda: count) == expected


def test_without_a_cuda_driver_no_gpu_is_visible() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert visible_gpus(env, driver=lambda: False, count=lambda: 2) == ()


@pytest.mark.parametrize(
    ("value", "visible", "expected"),
    [
        ("auto", ("0", "1"), ("0", "1")),
        ("AUTO", (), ()),  # no GPU: auto is the CPU, and CUDA is never required
        ("none", ("0", "1"), ()),
        ("1", ("0", "1"), ("1",)),
        ("1,0", ("0", "1"), ("1", "0")),
        (" 0 , 1 ", ("0", "1"), ("0", "1")),
    ],
)
def test_parse_gpus(value: str, visible: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert parse_gpus(value, visible) == expected


@pytest.mark.parametrize(
    ("value", "visible", "message"),
    [
        ("2", ("0", "1"), "2 is not a visible GPU (visible: 0, 1)"),
        ("0", (), "0 is not a visible GPU (visible: none)"),
        ("0,,1", ("0", "1"), "has an empty entry"),
        ("0,0", ("0", "1"), "names a GPU twice"),
        ("x", ("0",), "x is not a visible GPU"),
    ],
)
def test_parse_gpus_refuses(value: str, visible: tuple[str, ...], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_gpus(value, visible)


@pytest.mark.parametrize(
    ("text", "limit"),
    [("max 100000", None), ("150000 100000", 1.5), ("200000 100000\n", 2.0), ("junk", None)],
)
def test_cgroup_cpu_limit(text: str, limit: float | None) -> None:
    assert cgroup_cpu_limit(text) == limit


def test_this_machine() -> None:
    cores = available_cores()
    # the affinity mask, lowered by this machine's cgroup quota when there is one
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = Path("/sys/fs/cgroup/cpu.max")
    limit = cgroup_cpu_limit(quota.read_text()) if quota.exists() else None
    if limit is not None:
        expected = min(expected or 1, max(1, math.floor(limit)))
    assert cores == max(1, expected or 1)
    memory = available_memory()
    assert memory is None or memory > 0
    if not cuda_driver_available():
        assert visible_gpus() == ()


@pytest.mark.parametrize(
    ("driver", "plugins", "environ", "set_cpu"),
    [
        (False, False, {}, True),
        (True, False, {}, False),  # a driver: TensorFlow may use the GPUs
        (False, True, {}, False),  # a PluggableDevice (XPU…) would be hidden
        (False, False, {"TF_ENABLED_DEVICE_TYPES": "CPU,XPU"}, False),  # the user's choice
    ],
)
def test_cpu_only_without_a_cuda_driver(
    monkeypatch: pytest.MonkeyPatch,
    driver: bool,
    plugins: bool,
    environ: dict[str, str],
    set_cpu: bool,
) -> None:
    monkeypatch.setattr(devices, "cuda_driver_available", lambda: driver)
    monkeypatch.setattr(devices, "_has_device_plugins", lambda: plugins)
    monkeypatch.setattr(sys, "platform", "linux")
    before = dict(environ)
    assert cpu_only_without_cuda_driver(environ) is set_cpu
    assert environ == ({"TF_ENABLED_DEVICE_TYPES": "CPU"} if set_cpu else before)


def test_cpu_only_is_linux_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")  # Metal's GPU device is a plugin there
    environ: dict[str, str] = {}
    assert not cpu_only_without_cuda_driver(environ) and environ == {}


def test_memory_growth_is_on_for_every_gpu_tensorflow_sees() -> None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    assert enable_memory_growth() == len(gpus)
    assert all(tf.config.experimental.get_memory_growth(g) for g in gpus)
