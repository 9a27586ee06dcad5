"""Process helpers: is a process of this host still alive?"""

from __future__ import annotations

import os
import socket


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
