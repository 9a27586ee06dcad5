"""Process helpers: is a process of this host still alive, which --jobs worker is this one."""

from __future__ import annotations

import os
import socket

WORKER_ENV = "NNSWEEP_WORKER"  # set by `run --jobs N` on each worker: 0 … N-1


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
    return True


def local_and_dead(host: object, pid: object) -> bool:
    """True for a (host, pid) pair recorded on this host whose process is gone."""
    if host != this_host() or pid is None:
        return False
    try:
        return not pid_alive(int(str(pid)))
    except ValueError:
        return False


def worker_index() -> int:
    """This process's index among ``--jobs`` workers (0 when run alone)."""
    try:
        return int(os.environ.get(WORKER_ENV, "0"))
    except ValueError:
        return 0
