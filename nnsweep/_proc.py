"""Process helpers: signals that stop us cleanly, and whether a process of this host is alive."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists on this host (or might: no permission to ask)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but was not yet reaped by its parent (Linux's ``/proc``).

    A worker killed with SIGKILL stays a zombie until the ``--jobs`` parent waits for it, and
    ``os.kill(pid, 0)`` still succeeds on a zombie: without this its RUNNING trial would look
    alive to the other workers, which then wait for it forever.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS) or gone just now: os.kill's answer stands
    # "pid (comm) state …": comm may hold spaces and parentheses, the state follows the last ')'
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def local_and_dead(host: object, pid: object) -> bool:
    """True for a (host, pid) pair recorded on this host whose process is gone."""
    if host != this_host() or pid is None:
        return False
    try:
        return not pid_alive(int(str(pid)))
    except ValueError:
        return False


class _Interrupts:
    """What the signal handler of :func:`interrupt_on_signals` sees and leaves behind."""

    deferring = 0  # depth of deferred_interrupts() blocks
    pending = False  # a signal arrived inside one; raised at the next safe point


_INTERRUPTS = _Interrupts()


@contextlib.contextmanager
def interrupt_on_signals(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """Turn ``signals`` into KeyboardInterrupt inside the block, whatever the inherited
    disposition (a non-interactive shell starts background jobs with SIGINT ignored), so
    Ctrl-C and SIGTERM stop a sweep or a server cleanly. Inside :func:`deferred_interrupts`
    the first signal waits for a safe point. Handlers are restored on exit; off the main
    thread, where Python cannot set them, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        if _INTERRUPTS.deferring and not _INTERRUPTS.pending:
            _INTERRUPTS.pending = True  # raised by check_interrupt(), between two writes
            return
        _INTERRUPTS.pending = False  # outside a deferred block, or the second signal:
        raise KeyboardInterrupt  # at once, and only once

    saved = {sig: signal.signal(sig, interrupt) for sig in signals}
    _INTERRUPTS.pending = False
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        _INTERRUPTS.pending = False


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold the first Ctrl-C/SIGTERM until a safe point instead of raising it anywhere.

    A KeyboardInterrupt raised inside a storage write (Optuna's ``trial.report``, an MLflow
    metric) can leave that store's session half-way, and the next write then fails with an
    error that hides the interrupt. Inside this block the first signal only marks a pending
    interrupt, raised by the next :func:`check_interrupt` (between training batches, between
    trials) or when the block ends normally; a second signal raises at once.
    """
    _INTERRUPTS.deferring += 1
    try:
        yield
    finally:
        _INTERRUPTS.deferring -= 1
    if not _INTERRUPTS.deferring:
        check_interrupt()


def check_interrupt() -> None:
    """A safe point: raise the KeyboardInterrupt a deferred signal left pending, if any."""
    if _INTERRUPTS.pending:
        _INTERRUPTS.pending = False
        raise KeyboardInterrupt
