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


@contextlib.contextmanager
def interrupt_on_signals(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """Turn ``signals`` into KeyboardInterrupt inside the block, whatever the inherited
    disposition (a non-interactive shell starts background jobs with SIGINT ignored), so
    Ctrl-C and SIGTERM stop a sweep or a server cleanly. Handlers are restored on exit; off
    the main thread, where Python cannot set them, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
