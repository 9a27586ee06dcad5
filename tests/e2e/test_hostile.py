"""Hostile sweep files through the real CLI: exit 2, one stderr line, seconds, bounded memory.

Each file is a class of input someone else's sweep file may hold (alias bombs, huge ranges,
huge models, bytes that are not text, NaN, names with markup). ``nnsweep run`` runs in a
subprocess with stores pointed into ``tmp_path``; it must refuse the file before loading any
data or writing either store, without importing TensorFlow.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnsweep.errors import SpecError
from nnsweep.spec.config import LimitsSpec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
OK = b"name: s\ndataset: mnist_5k\ntrials: 3\n"
SECONDS = 10.0
PEAK_MB = 500
SAFETY_NET_BYTES = 3 * 1024**3  # address-space cap: a regression fails, the machine survives


def _laughs(levels: int = 9, width: int = 9) -> bytes:
    """A "billion laughs": each level a list of ``width`` aliases of the level below."""
    rows = ['  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        rows.append(f"  - &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return OK + b"description:\n" + "\n".join(rows).encode() + b"\n"


def _laughs_in_space() -> bytes:
    rows = ["x: &u0 [8, 16, 32, 64, 128, 256, 512, 1024, 2048]"]
    rows += [f"x{i}: &u{i} [" + ", ".join([f"*u{i - 1}"] * 9) + "]" for i in range(1, 9)]
    nested = "\n".join("  " + r for r in rows)
    return OK + b"space:\n  units:\n" + nested.encode() + b"\n"


def _garbage(nul: bool = True) -> bytes:
    data = random.Random(14).randbytes(4096)
    return data if nul else data.replace(b"\0", b"")


HOSTILE: list[tuple[str, Callable[[], bytes], str]] = [
    # (id, file content, a fragment of the expected error line)
    ("billion-laughs", _laughs, "more than 10,000 values"),
    ("billion-laughs-in-space", _laughs_in_space, "more than 10,000 values"),
    ("recursive-alias", lambda: OK + b"space: &a {units: *a}\n", "inside its own anchor"),
    (
        "n_layers-huge-range",
        lambda: OK + b"space: {n_layers: {low: 1, high: 10000000000}}\n",
        "space.n_layers: high must be <= 32",
    ),
    (
        "units-huge-range",
        lambda: OK + b"space: {units: {low: 1, high: 1000000000000000}}\n",
        "space.units: high must be <= 65,536",
    ),
    ("units-1e9", lambda: OK + b"space: {units: 1.0e+9}\n", "space.units: the value must be <="),
    ("units-1e9-int", lambda: OK + b"space: {units: 1000000000}\n", "must be <= 65,536"),
    ("n_layers-1e10", lambda: OK + b"space: {n_layers: 1e10}\n", "space.n_layers"),
    (
        "model-too-big",
        lambda: OK + b"space: {n_layers: 32, units: 65536}\n",
        "over limits.max_params = 50,000,000",
    ),
    (
        "float-grid-1e12",
        lambda: (
            OK + b"sampler: grid\nspace: {learning_rate: {low: 1.0e-9, high: 1.0, step: 1.0e-12}}\n"
        ),
        "grid points",
    ),
    (
        "grid-product",
        lambda: (
            OK + b"sampler: grid\nspace: {n_layers: 4, units: "
            b"{low: 1, high: 1000}, epochs: {low: 1, high: 50}}\n"
        ),
        "grid points",
    ),
    ("epochs-1e12", lambda: OK + b"train: {epochs: 1000000000000}\n", "train.epochs"),
    ("batch_size-0", lambda: OK + b"train: {batch_size: 0}\n", "train.batch_size"),
    (
        "batch_size-huge",
        lambda: OK + b"space: {batch_size: [32, 100000000]}\n",
        "space.batch_size: each choice must be <= 1,048,576",
    ),
    ("seed-negative", lambda: OK + b"seed: -1\n", "seed: Input should be greater than"),
    ("seed-2**32", lambda: OK + b"seed: 4294967296\n", "seed: Input should be less than"),
    ("seed-huge-int", lambda: OK + b"seed: " + b"9" * 5000 + b"\n", "more than 30 digits"),
    ("seed-hex-int", lambda: OK + b"seed: 0x" + b"f" * 64 + b"\n", "more than 30 digits"),
    ("trials-1e300", lambda: OK.replace(b"trials: 3", b"trials: 1.0e+300"), "trials"),
    ("timeout-inf", lambda: OK + b"timeout: .inf\n", "timeout: Input should be a finite"),
    (
        "learning_rate-nan",
        lambda: OK + b"space: {learning_rate: .nan}\n",
        "space.learning_rate: the value must be a finite number",
    ),
    (
        "validation-nan",
        lambda: OK.replace(b"dataset: mnist_5k", b"dataset: {name: mnist_5k, validation: .nan}"),
        "dataset.validation",
    ),
    ("latin-1", lambda: OK + b"description: caf\xe9 cr\xe8me\n", "not UTF-8 text"),
    ("utf-16", lambda: OK.decode().encode("utf-16"), "UTF-16 text, not UTF-8"),
    ("utf-32-no-bom", lambda: OK.decode().encode("utf-32-le"), "a binary file"),
    ("binary-garbage", _garbage, "a binary file"),
    ("binary-garbage-no-nul", lambda: _garbage(nul=False), "not UTF-8 text"),
    (
        "five-megabytes",
        lambda: OK + b"description: " + b"x" * 5_000_000 + b"\n",
        "at most 262,144 bytes",
    ),
    (
        "many-keys",
        lambda: OK + b"".join(b"k%d: %d\n" % (i, i) for i in range(15_000)),
        "more than 10,000 values",
    ),
    (
        "deep-flow-nesting",
        lambda: OK + b"description: " + b"[" * 100_000 + b"]" * 100_000,
        "nesting deeper than 20 levels",
    ),
    (
        "deep-block-nesting",
        lambda: OK + b"space:\n" + b"".join(b" " * i + b"k:\n" for i in range(1, 300)),
        "nesting deeper than 20 levels",
    ),
    ("top-level-list", lambda: b"- name: s\n- dataset: mnist_5k\n", "must be a YAML mapping"),
    ("empty-file", lambda: b"", "must be a YAML mapping"),
    ("duplicate-key", lambda: OK + b"trials: 1000000\n", "key 'trials' appears twice"),
    ("escape-sequence", lambda: OK + b'description: "\\e[2J\\e[31mhi"\n', "control character"),
    (
        "name-quotes-newline-markup",
        lambda: b'name: "a\'b\\"c\\n[bold]x[/bold]"\ndataset: mnist_5k\ntrials: 3\n',
        "is not a usable study name",
    ),
    (
        "name-rich-markup",
        lambda: b"name: '[bold red]x[/]'\ndataset: mnist_5k\ntrials: 3\n",
        "'[bold red]x[/]' is not a usable study name",
    ),
    (
        "name-10k-chars",
        lambda: b"name: " + b"n" * 10_000 + b"\ndataset: mnist_5k\ntrials: 3\n",
        "not a usable study name",
    ),
    ("unknown-key-long", lambda: OK + b"k" * 1000 + b": 1\n", "unknown key 'kkkkkkk"),
    (
        "description-200k",
        lambda: OK + b"description: " + b"d" * 200_000 + b"\n",
        "description: String should have at most 10000 characters",
    ),
]


@dataclass
class Outcome:
    """What one ``nnsweep run`` did with a hostile file."""

    code: int
    stderr: str
    seconds: float
    cpu_seconds: float
    peak_mb: float
    left_behind: list[str]


# Peak memory is measured by a tiny Python launcher that forks the real command and reads its
# RUSAGE_CHILDREN: a process started straight from this (large) pytest process would "peak" at
# pytest's own size, since Linux keeps the spawning image's resident size in ru_maxrss across
# exec (fork and vfork alike). The launcher also sets the address-space cap on the command.
_LAUNCHER = """
import json, resource, subprocess, sys
cap = int(sys.argv[1])
def limit():
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
code = subprocess.call(sys.argv[3:], preexec_fn=limit)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[2], "w") as fh:
    json.dump({"maxrss_kb": u.ru_maxrss, "cpu": u.ru_utime + u.ru_stime}, fh)
sys.exit(code)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NNSWEEP_", "MLFLOW_"))}
    return {**env, "PYTHONPATH": str(ROOT)}


def _run_all(base: Path, parallel: int = 2) -> dict[str, Outcome]:
    """``nnsweep run FILE`` for every hostile file, ``parallel`` processes at a time.

    Each runs in its own empty folder with both stores pointed into it, under the launcher
    (``_LAUNCHER``) that measures its own peak memory and CPU time.
    """
    pending = list(HOSTILE)
    running: dict[int, tuple[str, subprocess.Popen[bytes], float, Path]] = {}
    outcomes: dict[str, Outcome] = {}
    while pending or running:
        while pending and len(running) < parallel:
            name, make, _ = pending.pop(0)
            (base / name).mkdir()
            sweep, workdir = base / name / "hostile.yaml", base / name / "work"
            sweep.write_bytes(make())
            workdir.mkdir()
            usage_file = base / name / "usage.json"
            args = [sys.executable, "-S", "-c", _LAUNCHER, str(SAFETY_NET_BYTES), str(usage_file)]
            args += [sys.executable, "-m", "nnsweep", "run", str(sweep), "--quiet"]
            args += ["--storage", f"sqlite:///{workdir}/optuna.db"]
            args += ["--tracking-uri", f"sqlite:///{workdir}/mlflow.db"]
            with (base / name / "stderr.txt").open("wb") as err:
                proc = subprocess.Popen(
                    args,
                    cwd=workdir,
                    env=_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                )
            running[proc.pid] = (name, proc, time.monotonic(), workdir)
        for pid, (name, proc, start, workdir) in list(running.items()):
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if not done and time.monotonic() - start > 3 * SECONDS:
                os.killpg(pid, 9)
                done, status, usage = os.wait4(pid, 0)
            if done:
                del running[pid]
                proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait
                usage_file = base / name / "usage.json"
                measured = json.loads(usage_file.read_text()) if usage_file.exists() else {}
                outcomes[name] = Outcome(
                    code=proc.returncode,
                    stderr=(base / name / "stderr.txt").read_text(errors="replace"),
                    seconds=time.monotonic() - start,
                    cpu_seconds=measured.get("cpu", usage.ru_utime + usage.ru_stime),
                    peak_mb=measured.get("maxrss_kb", usage.ru_maxrss) / 1024,  # KiB on Linux
                    left_behind=sorted(p.name for p in workdir.iterdir()),
                )
        time.sleep(0.02)
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return _run_all(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize(
    ("name", "expected"), [pytest.param(name, expected, id=name) for name, _, expected in HOSTILE]
)
def test_hostile_sweep_file_is_refused_quickly_and_leaves_nothing(
    outcomes: dict[str, Outcome], name: str, expected: str
) -> None:
    out = outcomes[name]
    lines = out.stderr.splitlines()
    assert out.code == 2, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("nnsweep: error: "), out.stderr[-2000:]
    assert expected in lines[0]
    assert len(lines[0]) < 400 and "\x1b" not in lines[0]
    assert out.seconds < SECONDS
    assert out.cpu_seconds < SECONDS / 2  # the work itself, whatever else shares the CPU
    assert out.peak_mb < PEAK_MB
    assert out.left_behind == []  # no optuna.db, mlflow.db or mlruns


def test_refused_before_tensorflow_or_the_stores_are_imported(tmp_path: Path) -> None:
    sweep = tmp_path / "hostile.yaml"
    sweep.write_bytes(_laughs())
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nnsweep", "run", str(sweep)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for heavy in ("tensorflow", "keras", "optuna", "mlflow"):
        assert heavy not in imported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.yaml"]


def test_cli_overrides_are_bounded_too(tmp_path: Path) -> None:
    sweep = tmp_path / "in.yaml"
    sweep.write_bytes(OK)
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "nnsweep", "run", str(sweep), "--seed", "99999999999999"],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "nnsweep: error: command line: seed: Input should be less than or equal to "
        "4294967295, but got 99999999999999"
    )
    assert list(workdir.iterdir()) == []


def test_sweep_preflight_checks_the_model_size_before_any_store(tmp_path: Path) -> None:
    """The input width of a table is known only once loaded: the pre-flight checks again."""
    from nnsweep.sweep.prepare import preflight

    spec = parse_spec(OK.decode() + "space: {n_layers: 2, units: 64}\n")
    # a limit the spec's own check never saw: as if the width were unknown until loading
    tight = spec.model_copy(update={"limits": LimitsSpec(max_params=50_000)})
    storage, uri = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(SpecError, match=r"784 inputs, 10 outputs\) has 55,050 parameters"):
        preflight(tight, storage_url=storage, tracking_uri=uri)
    assert list(tmp_path.iterdir()) == []
    assert preflight(spec, storage_url=storage, tracking_uri=uri).dataset.x_train.shape[1] == 784
