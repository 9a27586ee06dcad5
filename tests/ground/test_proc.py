"""nnsweep._proc: whether a worker recorded on a trial is still alive; Ctrl-C at safe points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nnsweep._proc import (
    check_interrupt,
    deferred_interrupts,
    interrupt_on_signals,
    local_and_dead,
    pid_alive,
    this_host,
)


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


def _ctrl_c() -> None:
    """Send this process SIGINT; its handler runs before the next line of Python."""
    os.kill(os.getpid(), signal.SIGINT)


def test_outside_a_deferred_block_ctrl_c_raises_at_once() -> None:
    with interrupt_on_signals(), pytest.raises(KeyboardInterrupt):
        _ctrl_c()
        time.sleep(5)  # never reached: the handler raised


def test_inside_a_deferred_block_ctrl_c_waits_for_the_next_safe_point() -> None:
    """The work the signal lands in finishes (a storage write is never cut in half); the
    interrupt comes at check_interrupt()."""
    written: list[str] = []
    with interrupt_on_signals(), deferred_interrupts():
        _ctrl_c()
        written.append("the write the signal landed in")
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
        written.append("after the safe point")
        check_interrupt()  # raised once, then cleared
    assert written == ["the write the signal landed in", "after the safe point"]


def test_a_pending_interrupt_is_raised_when_the_deferred_block_ends() -> None:
    reached = False
    with interrupt_on_signals(), pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            _ctrl_c()
            reached = True
    assert reached


def test_a_second_ctrl_c_inside_a_deferred_block_raises_at_once() -> None:
    with interrupt_on_signals(), deferred_interrupts():
        _ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c()
            time.sleep(5)  # never reached
        check_interrupt()  # the second one was the first, forced: nothing left pending


def test_without_our_handler_a_deferred_block_changes_nothing() -> None:
    """A library caller keeps Python's own Ctrl-C behaviour."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever ran before
    try:
        with pytest.raises(KeyboardInterrupt), deferred_interrupts():
            _ctrl_c()
            time.sleep(5)
    finally:
        signal.signal(signal.SIGINT, saved)


@pytest.mark.slow
def test_a_fit_stops_between_batches_and_the_epoch_it_stopped_in_is_not_logged() -> None:
    """Objective's first callback raises a pending Ctrl-C at the next batch or epoch edge; the
    callbacks after it never see the epoch it interrupted."""
    import keras

    from nnsweep.train.callbacks import callback_classes

    Interrupter = callback_classes()[0]
    logged: list[int] = []

    class Writer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logged.append(epoch)
            if epoch == 1:
                _ctrl_c()  # lands inside this "write", which completes
                logged.append(-1)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((64, 3), "float32")
    with interrupt_on_signals(), deferred_interrupts(), pytest.raises(KeyboardInterrupt):
        model.fit(
            x, x[:, :1], epochs=10, batch_size=8, callbacks=[Interrupter(), Writer()], verbose=0
        )
    assert logged == [0, 1, -1]
