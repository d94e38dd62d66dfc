"""Fixtures and helpers for the accounts area's tests.

* ``portal`` — the real app under uvicorn (``support_http.live_server``) with notice channels
  configured (nothing sends: no worker runs, the requests wait in Redis), fast argon2, and a
  clinic ``c1`` with queues ``gp`` and ``eye`` in UTC.
* :class:`Patient` — a registered account's httpx client (cookie + CSRF header).
* :func:`codes_sent` — the verification codes the app asked the notifier to send, read from
  the notifier's request stream (the real interface between the two areas).
* ``clinic`` — clinic ``cz`` in a timezone where it is about noon (today's slots always exist).
* ``live_portal`` — the app with the real notifier running (SMTP server, HTTP sink); use
  :func:`off_loop` for HTTP calls in those async tests, and :func:`code_in_ledger` for codes.
* :func:`redis_dump` — the whole Redis keyspace as bytes, to search for personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from argon2 import PasswordHasher

from qtraq_live.accounts import passwords
from qtraq_live.config import Settings
from qtraq_live.engine import redis_keys as keys
from qtraq_live.runtime.duties import Context
from tests.support_http import LiveServer, live_server, use_fast_hashes
from tests.support_notify import NotifyEnv, await_until

PASSWORD = "a long unusual passphrase"
T = TypeVar("T")
_serial = itertools.count(1)


def fast_account_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def with_channels(settings: Settings) -> Settings:
    return settings.replace(notify__email="mailto://127.0.0.1:9?to={to}",
                            notify__sms="json://127.0.0.1:9/send?:to={to}",
                            privacy__grievance_contact="Grievance Officer, grievance@clinic.example")


@pytest.fixture
def portal(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    use_fast_hashes(monkeypatch)
    fast_account_hashes(monkeypatch)
    with live_server(with_channels(settings)) as live:
        live.clinic("c1", ("gp", "eye"))
        yield live


@dataclass
class Patient:
    client: httpx.Client
    id: int
    email: str
    mobile: str

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.client.post(path, json=json, **kw)


def unique_contacts() -> tuple[str, str]:
    n = next(_serial)
    return f"person{n}@mail.example", f"+9198765{n:05d}"


def register(live: LiveServer, **fields: Any) -> Patient:
    email, mobile = unique_contacts()
    body = {"name": "Asha Verma", "email": email, "mobile": mobile, "password": PASSWORD, **fields}
    c = live.client(headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 "
                                           "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"})
    r = c.post("/accounts", json=body)
    assert r.status_code == 201, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return Patient(c, r.json()["account"]["id"], email, mobile)


def notice_requests(redis_url: str) -> list[dict[str, Any]]:
    """What the app asked the notifier for (``qt:notice:requests``), oldest first."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries: list[tuple[str, dict[str, str]]] = client.xrange(keys.NOTICE_REQUESTS)  # type: ignore[assignment]
        return [json.loads(fields["r"]) for _, fields in entries]
    finally:
        client.close()


def codes_sent(redis_url: str, to: str) -> list[str]:
    return [r["context"]["code"] for r in notice_requests(redis_url)
            if r.get("kind") == "verify_code" and r["to"] == to]


def verify(p: Patient, channel: str, code: str) -> httpx.Response:
    return p.post("/accounts/verify", {"channel": channel, "code": code})


def add_patient(p: Patient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Asha Verma", "relation": "self", "age": 34, **fields}
    r = p.post("/me/patients", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def midday_zone() -> str:
    """An IANA zone where it is now about noon, so today's slots exist whenever tests run."""
    offset = 12 - datetime.now(timezone.utc).hour  # Etc/GMT-N is UTC+N
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@dataclass
class Clinic:
    id: str
    tz: str
    slotted: str  # queue with hourly slots (capacity 2)
    by_date: str  # queue taking appointments by date only

    def today(self) -> str:
        return datetime.now(ZoneInfo(self.tz)).date().isoformat()

    def tomorrow(self, days: int = 1) -> str:
        return (datetime.now(ZoneInfo(self.tz)).date() + timedelta(days=days)).isoformat()

    def current_slot(self) -> str:
        return f"{datetime.now(ZoneInfo(self.tz)).hour:02d}:00"

    def later_slot(self) -> str:
        return f"{datetime.now(ZoneInfo(self.tz)).hour + 2:02d}:00"


@pytest.fixture
def clinic(portal: LiveServer) -> Clinic:
    """Clinic ``cz`` in a zone where it is about noon: ``doc`` has hourly slots from 00:00
    to 23:00 (capacity 2, policy slot), ``lab`` takes appointments by date."""
    c = Clinic("cz", midday_zone(), "doc", "lab")

    async def make() -> None:
        await portal.engine.create_clinic(c.id, "Zone Clinic", timezone=c.tz)
        await portal.engine.create_queue(c.id, c.slotted, "Dr Rao", "D")
        await portal.engine.create_queue(c.id, c.by_date, "Lab", "L")

    portal.run(make())
    admin = portal.staff("admin")
    r = admin.put(f"/queues/{c.slotted}/slots", json={"slot_minutes": 60, "capacity": 2, "opens": "00:00",
                                                       "closes": "23:00"})
    assert r.status_code == 200, r.text
    return c


@pytest.fixture
async def live_portal(notify_env: NotifyEnv, notifier: Context,
                      monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    """The app on the notice test environment (SMTP server, HTTP sink), with the real notifier
    duty running in the test's loop: account notices become ledger entries and RQ jobs."""
    use_fast_hashes(monkeypatch)
    fast_account_hashes(monkeypatch)
    with live_server(notify_env.settings) as live:
        live.clinic("c1", ("gp", "eye"))
        yield live


async def code_in_ledger(aredis: aioredis.Redis, account_id: int, channel: str) -> str:
    """The newest code for ``channel`` of an account, read from its pending notice (no worker
    has sent it yet), once the notifier has turned the request into a notice."""
    pattern = keys.notice(f"a:acct{account_id}:code:*:{'sms' if channel == 'mobile' else 'email'}")

    async def find() -> str | None:
        found = sorted([k async for k in aredis.scan_iter(match=pattern)])
        ctx = await aredis.hget(found[-1], "ctx") if found else None
        return json.loads(ctx)["code"] if ctx else None

    code: str = await await_until(find, f"the {channel} code notice")
    return code


def redis_dump(redis_url: str) -> bytes:
    """Every key and value in Redis as bytes (RQ's zlib-compressed job payloads opened), for
    searching the whole keyspace for personal data."""
    client = redis.Redis.from_url(redis_url)
    parts: list[Any] = []
    try:
        for key in client.scan_iter(count=1000):
            parts.append(key)
            kind = client.type(key)
            if kind == b"string":
                parts.append(client.get(key))
            elif kind == b"hash":
                for field, value in client.hgetall(key).items():
                    parts += [field, value]
                    if isinstance(value, bytes):
                        with contextlib.suppress(zlib.error):
                            parts.append(zlib.decompress(value))
            elif kind == b"list":
                parts += client.lrange(key, 0, -1)
            elif kind == b"set":
                parts += list(client.smembers(key))
            elif kind == b"zset":
                parts += client.zrange(key, 0, -1)
            elif kind == b"stream":
                entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(key)  # type: ignore[assignment]
                for _, fields in entries:
                    for field, value in fields.items():
                        parts += [field, value]
    finally:
        client.close()
    return b"\n".join(p if isinstance(p, bytes) else repr(p).encode() for p in parts)


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (an HTTP request to the test server) in a thread, so the test's
    loop, where the notifier and its SQLite connection live, keeps running meanwhile."""
    return await asyncio.to_thread(fn, *args, **kwargs)
