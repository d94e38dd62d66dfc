"""Child processes that never outlive the supervisor, and restart when they die.

A supervisor killed with SIGKILL cannot clean up, so each child asks the kernel for a
signal when its parent dies (``PR_SET_PDEATHSIG``). The signal is tied to the *thread*
that forked the child, so children are started from the supervisor's main thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the pre-exec hook must not load libraries.
_prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Ask for ``sig`` when the parent dies; exit at once if it already has."""
    _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def popen(argv: Sequence[str], *, stdout: int | None = None, stderr: int | None = None,
          death_signal: int = signal.SIGTERM) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` for a child that gets ``death_signal`` when this process dies.

    The child gets its own process group: a Ctrl+C in the terminal (or ``timeout``) signals
    the whole foreground group, and the supervisor, not the terminal, decides the order in
    which children stop (Redis last).
    """
    parent = os.getpid()
    return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            process_group=0, preexec_fn=lambda: die_with_parent(parent, death_signal))


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of a (finished) child's process group: processes it forked
    itself, such as RQ's scheduler, would otherwise outlive it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; then clear its process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("child %d did not stop in %.0f s, killing it", proc.pid, timeout)
            proc.kill()
            proc.wait()
    kill_group(proc)


class Child:
    """One supervised command. :meth:`keep_alive` restarts it, backing off when it keeps dying."""

    MAX_BACKOFF_S = 30.0
    HEALTHY_AFTER_S = 10.0  # a child that ran this long before dying is restarted at once

    def __init__(self, name: str, argv: Sequence[str], stop_timeout: float = 10.0,
                 death_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.argv = list(argv)
        self.stop_timeout = stop_timeout
        self.death_signal = death_signal  # what the kernel sends it if the supervisor is killed
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._failures = 0
        self._restart_at = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self.proc = popen(self.argv, death_signal=self.death_signal)
        self._started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def keep_alive(self) -> None:
        """Called from the supervisor's loop: restart the child if it has died."""
        if self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if not self._restart_at:
            kill_group(self.proc)
            lived = now - self._started
            self._failures = 0 if lived >= self.HEALTHY_AFTER_S else self._failures + 1
            delay = min(self.MAX_BACKOFF_S, 2.0 ** self._failures - 1)
            self._restart_at = now + delay
            log.warning("%s exited with %s; restarting in %.0f s", self.name, self.proc.returncode, delay)
        if now >= self._restart_at:
            self._restart_at = 0.0
            self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, self.stop_timeout)
            log.info("stopped %s", self.name)
