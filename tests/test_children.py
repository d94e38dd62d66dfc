"""Children that never outlive a supervisor killed with SIGKILL, by the signal each asks for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from support_serve import alive

# A child that ignores SIGTERM, as a process stuck in a warm shutdown would.
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
PARENT = """
import sys
from qtraq_live.runtime.children import popen
child = popen([sys.executable, '-c', sys.argv[2]], stdout=None, death_signal=int(sys.argv[1]))
print(child.pid, flush=True)
child.wait()
"""


def orphan_after_parent_killed(death_signal: int) -> int:
    """Start a parent that starts STUBBORN with ``death_signal``, SIGKILL the parent, return the child's pid."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(int(death_signal)), STUBBORN],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "ready"  # the child's own line: its handler is set
    parent.kill()
    parent.wait()
    return child_pid


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("death_signal, gone", [(signal.SIGKILL, True), (signal.SIGTERM, False)])
def test_a_child_gets_its_death_signal_when_the_supervisor_is_killed(death_signal: int, gone: bool) -> None:
    pid = orphan_after_parent_killed(death_signal)
    try:
        # SIGKILL cannot be ignored; SIGTERM is, so that child is still there after the same wait.
        assert wait_gone(pid, 3) is gone
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
