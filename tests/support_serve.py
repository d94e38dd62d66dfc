"""A real ``qtraq-live serve`` process for tests: start, wait until it answers, stop or kill.

    from support_serve import ServeProcess

    with ServeProcess(tmp_path / "data") as srv:          # embedded Redis, --port 0
        httpx.get(f"{srv.url}/healthz")
    with ServeProcess(data, env={"QTRAQ_REDIS_URL": url}, args=["--workers", "2"]) as srv: ...

It polls ``DATA_DIR/serve.json`` (written by the supervisor once every HTTP process is
ready) and then ``/healthz``. The server's stdout and stderr go to ``srv.log_path``; a start
that fails raises with the log's tail. :meth:`ServeProcess.kill` is a crash (SIGKILL) and
waits until every child of the supervisor is gone too; :meth:`ServeProcess.stop` is SIGTERM.
``serve_process`` is a fixture that builds them and stops any left running after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from conftest import TIMEOUT_FACTOR
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record.store import Store
from tests.support_notify import free_port

START_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 30.0
ADMIN_PASSWORD_ENV = "QTRAQ_TEST_ADMIN_PASSWORD"
_runs = itertools.count(1)


def one_clinic_config(name: str) -> str:
    """The ``[[clinics]]``/``[[staff]]`` TOML of a server seeded at start: clinic ``c1`` called
    ``name`` (UTC) with queue ``gp`` (prefix A), and user ``admin`` whose password is read from
    :data:`ADMIN_PASSWORD_ENV`."""
    return f"""
[[clinics]]
id = "c1"
name = "{name}"
timezone = "UTC"

  [[clinics.queues]]
  id = "gp"
  name = "General"
  prefix = "A"

[[staff]]
username = "admin"
role = "admin"
password_env = "{ADMIN_PASSWORD_ENV}"
"""


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any QTRAQ_* setting, plus a data dir.
    QTRAQ_FORCE_FALLBACKS passes: with it the servers run the public-API paths too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTRAQ_") or k == "QTRAQ_FORCE_FALLBACKS"}
    env["QTRAQ_DATA_DIR"] = str(data_dir)
    env.setdefault("QTRAQ_LOG_LEVEL", os.environ.get("QTRAQ_TEST_SERVER_LOG_LEVEL", "info"))
    return {**env, **extra}


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (read from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


class ServeProcess:
    """``qtraq-live serve`` (or ``demo``) as a subprocess; a context manager."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                 command: str = "serve") -> None:
        self.data_dir = Path(data_dir)
        self.env = clean_env(self.data_dir, **(env or {}))
        self.args = list(args) if "--port" in args else ["--port", "0", *args]
        self.command = command
        self.log_path = self.data_dir.parent / f"{command}-{next(_runs)}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0

    def start(self) -> ServeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["qtraq-live", self.command, *self.args], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, START_TIMEOUT_S, f"qtraq-live {self.command} to answer")
        except BaseException:
            self.kill()
            raise
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"qtraq-live {self.command} exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            info = json.loads((self.data_dir / "serve.json").read_text())
        except (OSError, ValueError):
            return False
        if info.get("pid") != self.proc.pid:
            return False
        self.url, self.port = info["url"], info["port"]
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * TIMEOUT_FACTOR)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the supervisor, as a crash would; wait until its children are gone too."""
        if self.proc is None:
            return
        children = children_of(self.proc.pid) if self.proc.poll() is None else []
        self.proc.kill()
        self.proc.wait()
        try:
            wait_until(lambda: not any(alive(pid) for pid in children), STOP_TIMEOUT_S,
                       "the supervisor's children to exit")
        except TimeoutError as exc:
            left = [f"{pid}: {command_line(pid)}" for pid in children if alive(pid)]
            raise TimeoutError(f"{exc}; still running: {left}\n{self.log_tail()}") from None

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


@pytest.fixture
def serve_process() -> Iterator[Any]:
    """``serve_process(data_dir, env=..., args=...)`` starts one; any still running are stopped."""
    started: list[ServeProcess] = []

    def start(data_dir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
              command: str = "serve") -> ServeProcess:
        srv = ServeProcess(data_dir, env, args, command).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


T = TypeVar("T")


@contextlib.asynccontextmanager
async def seeding(data_dir: Path, redis_url: str) -> AsyncIterator[tuple[Store, aioredis.Redis, QueueEngine]]:
    """The record under ``data_dir``, a Redis client and the engine, to write a server's state
    before it starts (a ``seed`` of :func:`seeded_serve`); all closed afterwards."""
    store = Store(data_dir / "qtraq.db")
    await store.open()
    r = aioredis.from_url(redis_url, decode_responses=True)
    try:
        engine = QueueEngine(r)
        await engine.load_scripts()
        yield store, r, engine
    finally:
        await r.aclose()
        await store.close()


@contextlib.contextmanager
def seeded_serve(redis_url: str, data: Path, seed: Callable[[Path, str], Awaitable[T]]) -> Iterator[tuple[ServeProcess, T]]:
    """A real ``qtraq-live serve`` on a fresh port over ``data``, seeded first by ``seed(data,
    redis_url)`` (its answer is yielded beside the server), on an emptied Redis that is emptied
    again afterwards. The browser tests' module fixtures share it."""
    redis.Redis.from_url(redis_url).flushall()
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        seeded = pool.submit(asyncio.run, seed(data, redis_url)).result()  # type: ignore[arg-type]
    srv = ServeProcess(data, env={"QTRAQ_REDIS_URL": redis_url}, args=["--port", str(free_port())])
    srv.start()
    try:
        yield srv, seeded
    finally:
        srv.stop()
        redis.Redis.from_url(redis_url).flushall()
