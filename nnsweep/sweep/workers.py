"""``nnsweep run --jobs N|auto``: how many worker processes, and running them on one study.

Each worker is a plain ``nnsweep run --jobs 1`` process (TensorFlow wants processes, not
threads); they coordinate only through the Optuna storage, exactly as workers on many machines
do, so nothing here schedules trials. The storage must take concurrent writers: Optuna's
journal file (the default, ``journal:///optuna.log``) or an RDB server (PostgreSQL), not a
SQLite file. URLs reach the workers through the environment, never their command lines; so do
each worker's GPU and TensorFlow thread budget (:class:`nnsweep.train.devices.WorkerPlan`).

The workers are quiet: the parent alone shows progress, read from the storage, as one bar
for all of them; a worker's own output is shown only when it fails.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.errors import SpecError
from nnsweep.stores import STORAGE_ENV, TRACKING_ENV, startup_lock, takes_concurrent_writers
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec
    from nnsweep.sweep.prepare import Prepared
    from nnsweep.sweep.progress import SweepProgress
    from nnsweep.train.devices import WorkerPlan

POLL_SECONDS = 1.0  # how often the parent reads the storage for finished trials
# After Ctrl-C, how long workers get to stop before the parent tells them: a terminal's
# Ctrl-C reaches them too, and they stop at their next batch, then close the trial and its
# run; SIGINT from the parent would be a second signal, which stops a worker at once.
GRACE_SECONDS = 10.0
TAIL_LINES = 40  # lines of a failed worker's output shown


@dataclass
class JobsResult:
    """What ``run --jobs N`` did: the study, its trial counts by state, the workers' status."""

    study_name: str
    jobs: int
    code: int
    states: dict[str, int] = field(default_factory=dict)
    done_before: bool = False  # the study had its target before any worker started
    target_met: bool = False
    best: dict[str, Any] | None = None
    study: optuna.Study | None = field(default=None, repr=False, compare=False)


def choose_gpus(value: str) -> tuple[str, ...]:
    """The ``--gpus`` option against the GPUs this process sees (none without CUDA).

    Raises:
        SpecError: ids that are not visible, or a malformed list.
    """
    from nnsweep.train.devices import parse_gpus, visible_gpus

    return parse_gpus(value, visible_gpus())


def parse_jobs(value: str) -> int | None:
    """The ``--jobs`` option: ``auto`` → None, else a whole number >= 1.

    Raises:
        SpecError: anything else, with the fix.
    """
    text = value.strip().lower()
    if text == "auto":
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise SpecError(f"--jobs: must be 'auto' or a whole number >= 1, but got {value!r}")


def plan_jobs(
    spec: SweepSpec,
    dataset: Dataset,
    *,
    jobs: int | None,
    gpus: Sequence[str],
    storage_url: str,
) -> tuple[WorkerPlan, str | None]:
    """The workers to run for ``--jobs`` (None: auto) on ``gpus``, and a note to show.

    ``auto`` counts this process's cores, its GPUs, the largest model's parameters, the
    trials wanted and the free memory (:func:`nnsweep.train.devices.auto_jobs`); on a SQLite
    storage, which takes one writer, it is one worker, and the note says how to get more.
    """
    from nnsweep.train.devices import available_cores, available_memory, plan_workers

    chosen = tuple(gpus)
    cores = available_cores()
    if jobs is not None:
        return plan_workers(jobs, cores=cores, gpus=chosen), None
    n_params = spec.max_param_count(dataset.input_width, dataset.n_outputs)
    plan = plan_workers(
        "auto",
        cores=cores,
        gpus=chosen,
        n_params=n_params,
        trials=spec.trials,
        memory=available_memory(),
    )
    if plan.jobs > 1 and not takes_concurrent_writers(storage_url):
        note = (
            f"1 worker: {mask_url(storage_url)} is a SQLite file, which takes one writer; "
            "--storage journal:///optuna.log runs trials side by side "
            "(docs/scale-out.md)"
        )
        return plan_workers(1, cores=cores, gpus=chosen), note
    return plan, None


def use_gpus_here(plan: WorkerPlan) -> None:
    """Give this process (``--jobs 1``) the plan's GPUs, with memory growth; CPU: nothing.

    Before TensorFlow is imported the environment does it; after, memory growth is turned on
    for the GPUs TensorFlow already sees.
    """
    from nnsweep.train.devices import (
        ALLOW_GROWTH_ENV,
        CUDA_VISIBLE_DEVICES_ENV,
        enable_memory_growth,
        visible_gpus,
    )

    if not visible_gpus():
        return  # a CPU machine: exactly as before
    if "tensorflow" not in sys.modules:
        os.environ[CUDA_VISIBLE_DEVICES_ENV] = ",".join(plan.gpus)
        os.environ[ALLOW_GROWTH_ENV] = "true"
    elif plan.gpus:
        enable_memory_growth()


def worker_args(sweep: Path, overrides: Mapping[str, Any]) -> list[str]:
    """A worker's ``nnsweep run`` arguments: the sweep file and the flags given (None: unset)."""
    args = [str(sweep)]
    for key, value in overrides.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def run_jobs(
    sweep: Path,
    prepared: Prepared,
    *,
    plan: WorkerPlan,
    progress: SweepProgress,
    overrides: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> JobsResult:
    """Run ``plan.jobs`` workers on one study and show their progress as one.

    ``prepared`` comes from :func:`nnsweep.sweep.prepare.preflight`, as for a single process,
    so bad input was refused before anything is written. The study is created (or checked for
    resuming) here, once, before the workers start; each worker prepares its own run once.

    Args:
        sweep: the sweep file the workers read.
        prepared: the sweep (overrides applied), its data and its checked stores.
        progress: shows the trials the workers finish, read from the storage.
        overrides: the ``run`` flags to hand on (``trials``, ``seed``, …; None: not given).
        echo: where a failed worker's last output lines go, prefixed with ``[worker i]``.

    """
    import optuna

    from nnsweep.spec.start import start_points
    from nnsweep.study.storage import best_trial, create_or_resume, summarize
    from nnsweep.study.warm import start_new_study
    from nnsweep.sweep.run import run_sweep
    from nnsweep.train.devices import available_cores, plan_workers
    from nnsweep.train.objective import target_counts

    spec, dataset, name = prepared.spec, prepared.dataset, prepared.study_name
    storage_url, tracking_uri = prepared.storage_url, prepared.tracking_uri
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress lines say it all
    # the study is created here, once, so the workers do not race to create it; the MLflow
    # experiment is left to them (they take turns on it), off the path to the first trial
    with startup_lock(storage_url):
        study = create_or_resume(spec, storage_url, name, dataset=dataset)
        # start_with and the warm start, before the workers start: they find them done
        start_new_study(study, start_points(spec), prepared.warm)
    done = target_counts(study, spec.trials_count)[0]
    result = JobsResult(name, plan.jobs, 0)
    result.study = study  # the caller's summary reads it, never loading the study again
    result.done_before = spec.trials is not None and done >= spec.trials
    if result.done_before:
        # no worker is needed; one pass of the single-process start-up still fails the trial
        # of a worker that was killed here and closes its MLflow run, as a worker would
        run_sweep(prepared)
    else:
        if spec.trials is not None and spec.trials - done < plan.jobs:
            # resuming with fewer trials to go than workers: start no idle ones
            plan = plan_workers(spec.trials - done, cores=available_cores(), gpus=plan.gpus)
            result.jobs = plan.jobs
        progress.on_start(study, done, spec.trials)
        follower = StudyFollower(study, progress)
        try:
            result.code = run_workers(
                worker_args(sweep, {**(overrides or {}), "study": name}),
                plan=plan,
                storage_url=storage_url,
                tracking_uri=tracking_uri,
                echo=echo,
                poll=follower.poll,
            )
        finally:
            follower.poll()
            progress.stop()
    summary = summarize(study)
    result.states = {s: n for s, n in summary["states"].items() if n}
    counted = target_counts(study, spec.trials_count)[0]
    result.target_met = spec.trials is not None and counted >= spec.trials
    if summary["states"].get("COMPLETE"):
        result.best = best_trial(study)
    if result.target_met:
        result.code = 0  # a worker that died was replaced by the others: the study is done
    return result


class StudyFollower:
    """Hands each trial the workers finish to ``progress``, once, in trial order."""

    def __init__(self, study: optuna.Study, progress: Callable[..., None]) -> None:
        self.study, self.progress = study, progress
        self.seen = {t.number for t in self._finished()}

    def _finished(self) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()]

    def poll(self) -> None:
        for trial in sorted(self._finished(), key=lambda t: t.number):
            if trial.number not in self.seen:
                self.seen.add(trial.number)
                self.progress(self.study, trial)


def _collect(stream: Any, lines: collections.deque[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line.rstrip())


def run_workers(
    run_args: Sequence[str],
    *,
    plan: WorkerPlan,
    storage_url: str,
    tracking_uri: str,
    echo: Callable[[str], None] = print,
    poll: Callable[[], None] = lambda: None,
) -> int:
    """Start ``plan.jobs`` ``nnsweep run`` workers with ``run_args`` and wait for all of them,
    calling ``poll`` every :data:`POLL_SECONDS` meanwhile.

    Returns 0 when every worker succeeded, else the worst exit status (1 for a worker killed
    by a signal), after echoing that worker's last output lines. Ctrl-C reaches the workers
    too (same process group); each closes its trial and run before it exits, and those still
    running after :data:`GRACE_SECONDS` are sent SIGINT.
    """
    procs: list[subprocess.Popen[str]] = []
    tails: list[collections.deque[str]] = []
    readers: list[threading.Thread] = []
    for i in range(plan.jobs):
        env = {**os.environ, **plan.env(i), STORAGE_ENV: storage_url, TRACKING_ENV: tracking_uri}
        cmd = [sys.executable, "-m", "nnsweep", "run", *run_args, "--quiet", "--jobs", "1"]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        procs.append(proc)
        tails.append(collections.deque(maxlen=TAIL_LINES))
        reader = threading.Thread(target=_collect, args=(proc.stdout, tails[-1]), daemon=True)
        reader.start()
        readers.append(reader)
    try:
        while any(p.poll() is None for p in procs):
            poll()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
    worst = 0
    for i, proc in enumerate(procs):
        code = proc.returncode
        if code:
            why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            echo(f"[worker {i}] stopped: {why}; its last output:")
            for line in tails[i]:
                echo(f"[worker {i}] {line}")
            worst = max(worst, code if code > 0 else 1)
    return worst


def _stop(procs: Sequence[subprocess.Popen[str]]) -> None:
    """After Ctrl-C: let the workers finish their interrupted trial, then tell the rest."""
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.1)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    for proc in procs:
        proc.wait()
