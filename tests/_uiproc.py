"""`nnsweep ui` in a subprocess for the tests, and a free local port to give it."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

# A port the kernel picks (bind to 0) is free only until the socket closes: until the server
# binds it, seconds later, another pytest-xdist worker's free_port() or any outgoing connection
# (both take ports from the ephemeral range) may take it. So free_port() hands out ports below
# the ephemeral range, a block of its own to each xdist worker, each port once per process.
PORTS_PER_WORKER = 1000
_handed_out = itertools.count()


def _ephemeral_low() -> int:
    """The lowest port of Linux's ephemeral range (32768 when unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, and that no other pytest-xdist
    worker of this run, nor an outgoing connection, takes in the meantime."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    low = _ephemeral_low()
    blocks = (low - 1024) // PORTS_PER_WORKER
    if blocks >= 1:
        first = low - (1 + index % blocks) * PORTS_PER_WORKER
        for _ in range(PORTS_PER_WORKER):
            port = first + next(_handed_out) % PORTS_PER_WORKER
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:  # taken: by a program outside this run, or still closing
                    continue
                return port
    with socket.socket() as sock:  # no room below the ephemeral range: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UiProcess:
    """``nnsweep ui ARGS`` (or another ``subcommand``: ``dashboard``) in a subprocess, its
    output collected line by line by a thread.

    Args:
        args: the arguments after the subcommand.
        cwd: the folder it runs in.
        env: variables added to this process's environment (MLflow telemetry is always off).
        command: how to start nnsweep; default the venv's ``nnsweep`` console script.
    """

    def __init__(
        self,
        args: list[str],
        cwd: Path,
        *,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        subcommand: str = "ui",
    ) -> None:
        command = command or [str(Path(sys.executable).with_name("nnsweep"))]
        env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            **(env or {}),
        }
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*command, subcommand, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; fails if the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.proc.poll() is not None:
                self._reader.join(5)
                break
            time.sleep(0.2)
        raise AssertionError(f"nnsweep ui never printed /{pattern}/; output:\n{self.output}")

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a user stops it; returns the exit status."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code
