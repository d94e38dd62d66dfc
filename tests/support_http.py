"""A real qtraq-live HTTP server for tests, and staff clients logged in to it.

``app_server`` runs ``create_app(settings)`` under uvicorn in a background thread on a free
port (the real lifespan: Redis, SQLite, hub) and yields a :class:`LiveServer`: its base
``url``, ``run()`` to execute a coroutine on the server's own loop (set-up through the
app's real engine and store), and helpers that create staff users and return httpx
clients logged in by cookie (with the CSRF header) or by bearer token.

Import the fixtures into a test module with ``from tests.support_http import app_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher

from qtraq_live.config import Settings
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record import access, audit
from qtraq_live.runtime.server import WS_IMPL
from qtraq_live.web.app import create_app

T = TypeVar("T")
PASSWORD = "correct-horse-battery"
START_TIMEOUT_S = 15.0
_names = itertools.count(1)


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: Any
    loop: asyncio.AbstractEventLoop
    clients: list[httpx.Client] = field(default_factory=list)

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1{path}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop (where its Redis client and store live)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def engine(self) -> QueueEngine:
        engine: QueueEngine = self.app.state.engine
        return engine

    def db(self) -> sqlite3.Connection:
        """A separate read connection to the server's SQLite record, with the staff audit
        entries copied in first (the primary's duties process does that in production)."""
        if self.app.state.store is not None:
            self.run(audit.copy(self.app.state.redis, self.app.state.store))
        conn = sqlite3.connect(self.settings.data_dir / "qtraq.db")
        conn.row_factory = sqlite3.Row
        return conn

    def client(self, **kwargs: Any) -> httpx.Client:
        c = httpx.Client(base_url=self.api(""), timeout=10.0, **kwargs)
        self.clients.append(c)
        return c

    def add_user(self, role: str, queues: tuple[str, ...] = (), username: str | None = None) -> str:
        username = username or f"{role}{next(_names)}"
        self.run(access.create_user(self.app.state.store, self.app.state.redis, username, PASSWORD, role, queues))
        return username

    def login(self, username: str, password: str = PASSWORD) -> httpx.Client:
        """A client with the session cookie and the ``X-CSRF-Token`` header set."""
        c = self.client()
        r = c.post("/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c

    def staff(self, role: str, queues: tuple[str, ...] = ()) -> httpx.Client:
        return self.login(self.add_user(role, queues))

    def bearer(self, role: str, queues: tuple[str, ...] = ()) -> httpx.Client:
        username = self.add_user(role, queues)
        token = self.run(access.create_api_token(self.app.state.store, self.app.state.redis, username))
        return self.client(headers={"Authorization": f"Bearer {token}"})

    def clinic(self, clinic_id: str = "c1", queues: tuple[str, ...] = ("gp",), *, self_checkin: bool = False,
               mask_names: bool = False) -> None:
        """A clinic with queues (prefixes A, B, …) made through the engine."""

        async def make() -> None:
            await self.engine.create_clinic(clinic_id, f"Clinic {clinic_id}", timezone="UTC", mask_names=mask_names)
            for i, q in enumerate(queues):
                await self.engine.create_queue(clinic_id, q, f"Queue {q}", chr(ord("A") + i), self_checkin=self_checkin)

        self.run(make())


@contextlib.contextmanager
def live_server(settings: Settings, mode: str = "all") -> Iterator[LiveServer]:
    """uvicorn serving ``create_app(settings, mode)`` in a thread, on a free port."""
    app = create_app(settings, mode)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proxies = settings["security.trusted_proxies"]  # as `serve` does: no proxy is believed by default
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=bool(proxies),
                                           forwarded_allow_ips=proxies or None, ws=WS_IMPL,
                                           ws_per_message_deflate=False))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(sockets=[sock]),),
                              name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    live = LiveServer(f"http://127.0.0.1:{port}", settings, app, loop)
    try:
        yield live
    finally:
        for c in live.clients:
            c.close()
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        loop.close()
        sock.close()


def use_fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2 with small parameters: tests create and log in many users, and the
    default parameters cost ~100 ms of CPU per hash."""
    monkeypatch.setattr(access, "hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


StartServer = Callable[..., LiveServer]


@contextlib.contextmanager
def _servers(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartServer]:
    use_fast_hashes(monkeypatch)
    with contextlib.ExitStack() as servers:

        def start(mode: str = "all", **changes: Any) -> LiveServer:
            return servers.enter_context(live_server(settings.replace(**changes), mode))

        yield start


@pytest.fixture
def start_server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartServer]:
    """``start_server(mode="all", **changes)``: a live server on the test's settings with some
    changed (dots written as ``__``: ``security__track_rate_limit=2``); all stop at teardown."""
    with _servers(settings, monkeypatch) as start:
        yield start


@pytest.fixture
def app_server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The primary (mode ``all``) on the test's settings."""
    with _servers(settings, monkeypatch) as start:
        yield start()


def error_of(response: httpx.Response) -> tuple[int, str]:
    """``(status, code)`` of an API error answer, after checking it has the error shape."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return response.status_code, body["error"]["code"]
