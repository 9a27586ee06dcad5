"""nnsweep._proc: whether a worker recorded on a trial is still alive."""

from __future__ import annotations

import subprocess
import sys
import time

from nnsweep._proc import local_and_dead, pid_alive, this_host


def test_a_running_process_is_alive_and_an_exited_unreaped_one_is_not() -> None:
    """A worker killed with SIGKILL stays a zombie until its parent waits for it; its trial
    must still count as dead, or the other workers wait for it forever."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(sleeper.pid)
        assert not local_and_dead(this_host(), sleeper.pid)
        sleeper.kill()
        deadline = time.monotonic() + 10
        while pid_alive(sleeper.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # not reaped: the process is a zombie now
        assert not pid_alive(sleeper.pid)
        assert local_and_dead(this_host(), sleeper.pid)
        assert sleeper.poll() is not None  # it was a zombie, reaped only here
    finally:
        sleeper.kill()
        sleeper.wait()


def test_another_host_or_no_pid_is_never_called_dead() -> None:
    assert not local_and_dead("some-other-host", 1)
    assert not local_and_dead(this_host(), None)
    assert not local_and_dead(this_host(), "not-a-pid")
