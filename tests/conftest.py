"""Shared fixtures: temporary stores, tiny sweep files, and an in-process CLI runner.

Real Keras training on the bundled 5k MNIST digits with tiny models (a few epochs), a real
SQLite Optuna storage and a real SQLite MLflow store in ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (``make test``): one pytest-xdist worker per core this process may use, its
    affinity mask lowered by a cgroup CPU quota, as ``--jobs auto`` counts them. xdist's own
    count ignores the quota, and counts physical cores once psutil is installed (the bench
    extra). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still overrides it."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    from nnsweep.train.devices import available_cores

    return available_cores()


def _guard_fast_run(item: pytest.Item) -> bool:
    """Whether ``item`` runs under ``-m "not slow"`` (``make test-fast``) without the mark."""
    return "not slow" in (item.config.option.markexpr or "") and not item.get_closest_marker("slow")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _refusing_fit(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _refusing_fit(item))


def _refusing_fit(item: pytest.Item) -> Generator[None, object, object]:
    """In a fast run, a test (or fixture) not marked ``slow`` that trains a Keras model fails.

    Keeps the ``slow`` mark honest: ``make test-fast`` stays fast only while every training
    test carries it. The fit raises, and the test fails afterwards too, because a sweep turns
    the raise into a failed trial that a test may not look at.
    """
    if not _guard_fast_run(item):
        return (yield)
    import keras

    fits: list[str] = []
    original = keras.Model.fit

    def refuse(self: object, *args: object, **kwargs: object) -> object:
        fits.append(item.nodeid)
        raise RuntimeError(f"{item.nodeid} trains a Keras model: mark it @pytest.mark.slow")

    keras.Model.fit = refuse  # type: ignore[method-assign]
    try:
        result = yield
    finally:
        keras.Model.fit = original  # type: ignore[method-assign]
    if fits:
        pytest.fail(f"{item.nodeid} trains a Keras model ({len(fits)} fits): mark it slow")
    return result


TINY_SWEEP: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "mnist_5k", "validation": 0.1},
    "trials": 2,
    "seed": 1,
    "sampler": "random",
    "pruner": "none",
    "train": {"epochs": 2, "batch_size": 128},
    "space": {
        "n_layers": {"low": 1, "high": 2},
        "units": {"low": 8, "high": 32, "log": True},
        "activation": ["relu", "tanh"],
        "optimizer": "adam",
        "learning_rate": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
        "dropout": 0.0,
    },
}


@dataclass
class Stores:
    """A working directory with its own Optuna storage and MLflow store."""

    root: Path
    storage: str
    tracking_uri: str

    @property
    def args(self) -> list[str]:
        return ["--storage", self.storage, "--tracking-uri", self.tracking_uri]


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores(
        root=tmp_path,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_sweep(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny sweep file; keyword changes are merged in (``None`` drops a key)."""

    def write(name: str = "tiny", **changes: Any) -> Path:
        data = _merge(TINY_SWEEP, {"name": name, **changes})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``nnsweep ARGS`` in this process; returns exit code, stdout and stderr."""
    from nnsweep.cli.main import main

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@contextlib.contextmanager
def postgres_databases(url: str) -> Iterator[Callable[[], str]]:
    """``make()`` returns the URL of a fresh, empty database on the server of ``url`` (same
    credentials); every database made is dropped on exit. MLflow and Optuna each keep an
    ``alembic_version`` table, so no test may put both in one database."""
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"nnsweep_test_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return url.rsplit("/", 1)[0] + "/" + name

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_postgres() -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL databases on the server of NNSWEEP_TEST_POSTGRES_URL (dropped after)."""
    url = os.environ.get("NNSWEEP_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set NNSWEEP_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
    with postgres_databases(url) as make:
        yield make
