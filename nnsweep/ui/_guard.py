"""Run a server so that it, and every process it starts, dies with the process that started it.

``nnsweep ui`` runs ``mlflow server`` through this guard, as a plain script (it imports nothing
from nnsweep and starts in milliseconds)::

    python _guard.py PARENT_PID GRACE_S -- COMMAND...

Why a guard: ``mlflow server`` starts uvicorn (and, if enabled, job runners) as children of
its own. A ``nnsweep ui`` killed with SIGKILL cannot stop anything, and a closed terminal
(SIGHUP) may not let it finish; Linux's parent-death signal reaches one process only, and
``mlflow server`` forwards SIGTERM to uvicorn only once its own handler is installed. The guard
asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux), also
polls its parent pid (any POSIX system, and the race before ``prctl`` took effect), starts the
command in a process group of its own with the same parent-death signal, and when its parent
goes, or it gets SIGINT/SIGTERM/SIGHUP, or the command exits: SIGINT to the command (a graceful
stop), then after GRACE_S seconds SIGKILL to whatever is left of its process group.

Exit status: the command's (128 + N when it died of signal N).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 0.2
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent exits; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run(parent: int, grace: float, command: list[str]) -> int:
    """Run ``command`` until it exits, ``parent`` dies or a stop signal comes; see above."""
    stop: list[int] = []

    def request_stop(signum: int, frame: object) -> None:
        stop.append(signum)

    for sig in _STOP_SIGNALS:
        signal.signal(sig, request_stop)
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 128 + signal.SIGTERM
    # The command leads its own process group, so its whole tree can be killed at once, and
    # gets SIGTERM should the guard itself be killed (mlflow server forwards it to uvicorn).
    child = subprocess.Popen(
        command,
        start_new_session=True,
        preexec_fn=set_parent_death_signal,  # noqa: PLW1509 - the guard has no threads
    )
    try:
        while child.poll() is None and not stop and os.getppid() == parent:
            time.sleep(POLL_S)
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)
            deadline = time.monotonic() + grace
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL_S / 4)
    finally:
        _kill_group(child.pid, signal.SIGKILL)  # stragglers: workers, job runners, a hung server
    code = child.wait()
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    try:
        parent, grace, sep, *command = argv
        if sep != "--" or not command:
            raise ValueError
        return run(int(parent), float(grace), command)
    except ValueError:
        print("usage: _guard.py PARENT_PID GRACE_S -- COMMAND...", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
