"""Real parts for the notice tests: an SMTP server, an HTTP sink, RQ worker processes, the notifier.

* ``smtp`` — aiosmtpd on a free port; ``smtp.messages`` are the received emails.
* ``sink`` — a local HTTP server recording the JSON webhooks Apprise's ``json://`` posts (our
  stand-in for an SMS gateway); ``sink.down()`` makes it answer 503 until ``sink.up()``.
* ``notify_env`` — the environment (config file + data dir + Redis) shared by the test and its
  worker processes, with short retry delays; ``notify_env.settings`` for in-process use.
* ``workers`` — starts ``qtraq-live worker`` processes (``python -m qtraq_live.cli worker``);
  every process is stopped (or killed) when the test ends.
* ``notifier`` — the primary's notifier duty running in the test's loop on a real Store.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller

from qtraq_live.accounts.notices import recipients_for_ticket
from qtraq_live.config import Settings, load_settings
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record.store import Store
from qtraq_live.runtime.duties import Context
from qtraq_live.workers.notifier import run_notifier
from qtraq_live.workers.render import QUEUES
from tests.conftest import TIMEOUT_FACTOR

SMS_PATH = "/send"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


async def await_until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# -- SMTP --------------------------------------------------------------------------------


@dataclass
class SmtpServer:
    port: int
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd hook
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=clinic%40example.com&to={{to}}"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


# -- HTTP sink ---------------------------------------------------------------------------


@dataclass
class Sink:
    """Records each JSON webhook: ``{"to", "title", "message", "at"}``."""

    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    is_down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}{SMS_PATH}?:to={{to}}"

    def down(self) -> None:
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def to(self, recipient: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r.get("to") == recipient]


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with sink.lock:
                if sink.is_down:
                    sink.refused += 1
                else:
                    sink.received.append({**json.loads(body), "at": time.time()})
            self.send_response(503 if sink.is_down else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def running_sink() -> Iterator[Sink]:
    """A local HTTP sink on a free port: a provider we cannot reach (an SMS gateway, WhatsApp)."""
    s = Sink()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(s))
    s.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


# -- config shared with worker processes -------------------------------------------------


@dataclass
class NotifyEnv:
    env: dict[str, str]
    settings: Settings
    config_path: Path

    def reconfigure(self, **notify: Any) -> None:
        """Rewrite the ``[notify]`` table (before starting workers)."""
        lines = ["[notify]"] + [f"{k} = {json.dumps(v)}" for k, v in notify.items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.settings = load_settings(self.env)


@pytest.fixture
def notify_env(tmp_path: Path, redis_url: str, sink: Sink, smtp: SmtpServer) -> NotifyEnv:
    env = {"QTRAQ_DATA_DIR": str(tmp_path / "data"), "QTRAQ_REDIS_URL": redis_url,
           "QTRAQ_CONFIG": str(tmp_path / "qtraq.toml"), "QTRAQ_NOTIFY_RETRY_BASE_MS": "300",
           "QTRAQ_NOTIFY_JOB_TIMEOUT_S": "2", "QTRAQ_PUBLIC_URL": "https://q.example.in"}
    ne = NotifyEnv(env, None, tmp_path / "qtraq.toml")  # type: ignore[arg-type]
    ne.reconfigure(sms=sink.url(), email=smtp.url(), max_attempts=4)
    return ne


# -- worker processes --------------------------------------------------------------------


@dataclass
class Workers:
    env: dict[str, str]
    log_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, n: int = 1, *args: str) -> list[subprocess.Popen[bytes]]:
        env = {**os.environ, **self.env}
        new = []
        for _ in range(n):
            with open(self.log_dir / f"worker-{len(self.procs)}.log", "wb") as log_file:
                proc = subprocess.Popen([sys.executable, "-m", "qtraq_live.cli", "worker", *args], env=env,
                                        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            self.procs.append(proc)
            new.append(proc)
        return new

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("worker-*.log")))

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its scheduler child, as a crash or the OOM killer would."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for proc in self.procs:  # a scheduler child that outlived its worker
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def workers(notify_env: NotifyEnv, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(notify_env.env, tmp_path)
    yield w
    w.stop_all()


def scheduler_worker_pids(redis_url: str) -> set[int]:
    """The pids of the workers whose forked schedulers hold the locks of our queues."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        names = [client.get(f"rq:scheduler-lock:{q}") for q in QUEUES]
        pids = [client.hget(f"rq:scheduler:{name}", "pid") if name else None for name in names]
    finally:
        client.close()
    parents = set()
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        if pid and stat.exists():
            parents.add(int(stat.read_text().rsplit(")", 1)[1].split()[1]))
    return parents if len(parents) == len(QUEUES) or len(parents) == 1 and all(pids) else set()


# -- the notifier ------------------------------------------------------------------------


@pytest.fixture
async def notifier(notify_env: NotifyEnv, aredis: Any, engine: QueueEngine) -> AsyncIterator[Context]:
    store = Store(notify_env.settings.data_dir / "qtraq.db")
    await store.open()
    ctx = Context(notify_env.settings, aredis, engine, store)
    stop = asyncio.Event()
    task = asyncio.create_task(run_notifier(ctx, stop, appointments=recipients_for_ticket))  # as duties.notify
    yield ctx
    stop.set()
    await asyncio.wait_for(task, 10)
    await store.close()
