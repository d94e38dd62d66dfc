"""A notice worker stops at once on SIGTERM when it has no job (``serve`` waits for it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STOP_WITHIN_S = 5.0


def start_worker(redis_url: str, tmp_path: Path, n: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"worker-{n}.log"
    env = {**os.environ, "QTRAQ_REDIS_URL": redis_url, "QTRAQ_DATA_DIR": str(tmp_path / "data")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "qtraq_live.cli", "worker"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def test_an_idle_worker_stops_at_once_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    """RQ unsubscribes its command channel and then stops the listener thread, which redis-py
    joins without a timeout: if the thread had already read the confirmation it sat in a 60 s
    read, and ``serve``'s stop waited its 15 s for each worker, often (a race, so: 4 tries)."""
    for n in range(4):
        proc, log = start_worker(redis_url, tmp_path, n)
        try:
            deadline = time.monotonic() + 30
            while b"Listening on" not in log.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            time.sleep(0.3)  # its scheduler has started too
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)  # what serve's stop sends
            try:
                proc.wait(STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"stop {n} took over {STOP_WITHIN_S} s:\n{log.read_text(errors='replace')[-2000:]}")
            assert proc.returncode == 0, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() - started < STOP_WITHIN_S
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its scheduler child, if any outlived it
            except ProcessLookupError:
                pass
