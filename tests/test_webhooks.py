"""Signed webhooks: real RQ worker processes POST to a local receiver that verifies them."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from qtraq_live.errors import ConfigError
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.webhooks import check_settings, enqueue, payload, run_webhooks, signature, verify
from tests.support_notify import NotifyEnv, Workers, await_until, notify_env, sink, smtp, workers  # noqa: F401

SECRET = "a-test-secret-of-32-characters!!"


@dataclass
class Receiver:
    """A hospital system's endpoint: checks every signature, can be switched off."""

    port: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    refused: int = 0
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [d["delivery"] for d in self.deliveries]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with rec.lock:
                if rec.down:
                    rec.refused += 1
                    status = 503
                elif not verify(SECRET, self.headers.get("X-Qtraq-Signature", ""), body):
                    rec.bad_signatures += 1
                    status = 401
                else:
                    rec.deliveries.append({"delivery": self.headers["X-Qtraq-Delivery"],
                                           "event": self.headers["X-Qtraq-Event"], "body": json.loads(body)})
                    status = 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
async def hooks(notify_env: NotifyEnv, receiver: Receiver, aredis: Any, engine: QueueEngine) -> AsyncIterator[NotifyEnv]:
    notify_env.env.update({"QTRAQ_WEBHOOK_URLS": f"http://127.0.0.1:{receiver.port}/hook",
                           "QTRAQ_WEBHOOK_SECRET": SECRET, "QTRAQ_WEBHOOK_RETRY_BASE_S": "1"})
    notify_env.reconfigure()

    @dataclass
    class Ctx:
        settings: Any
        redis: Any

    stop = asyncio.Event()
    task = asyncio.create_task(run_webhooks(Ctx(notify_env.settings, aredis), stop))
    yield notify_env
    stop.set()
    await asyncio.wait_for(task, 10)


def test_signature_is_checked_in_constant_time_within_five_minutes() -> None:
    body = b'{"id":"c1:4"}'
    header = signature(SECRET, int(time.time()), body)
    assert verify(SECRET, header, body)
    assert not verify(SECRET, header, body + b" ")
    assert not verify("another-secret-entirely-here!!!!", header, body)
    assert not verify(SECRET, signature(SECRET, int(time.time()) - 600, body), body)
    assert not verify(SECRET, "garbage", body)


def test_settings_need_a_secret(notify_env: NotifyEnv) -> None:
    with pytest.raises(ConfigError) as err:
        check_settings(notify_env.settings.replace(webhooks__urls=["http://h/x"], webhooks__secret=""))
    assert err.value.key == "webhooks.secret"
    with pytest.raises(ConfigError) as err:
        check_settings(notify_env.settings.replace(webhooks__urls=["ftp://h/x"], webhooks__secret=SECRET))
    assert err.value.key == "webhooks.urls"


async def test_events_reach_the_receiver_signed_once_each_without_names(
        hooks: NotifyEnv, receiver: Receiver, engine: QueueEngine, workers: Workers) -> None:
    await engine.create_clinic("c1", "Clinic")
    await engine.create_queue("c1", "gp", "GP", "A")
    t = await engine.issue("gp", name="Sunita Devi")
    await engine.next("gp", "Room 2")
    workers.start(1)
    await await_until(lambda: len(receiver.ids()) >= 4, "four deliveries")
    assert sorted(receiver.ids()) == ["c1:1", "c1:2", "c1:3", "c1:4"]
    called = next(d for d in receiver.deliveries if d["event"] == "called")["body"]["tickets"][0]
    assert (called["id"], called["status"], called["counter"]) == (t["id"], "called", "Room 2")
    assert "Sunita" not in json.dumps(receiver.deliveries)
    assert receiver.bad_signatures == 0

    # A receiver that is down for a while gets the event once it is back.
    receiver.down = True
    await engine.next("gp", "Room 2")
    await await_until(lambda: receiver.refused >= 1, "a refused attempt")
    receiver.down = False
    await await_until(lambda: "c1:5" in receiver.ids(), "the retried delivery", timeout=30)
    assert len(receiver.ids()) == len(set(receiver.ids())) == 5


async def test_a_replayed_batch_enqueues_nothing_twice(hooks: NotifyEnv, engine: QueueEngine, redis_url: str) -> None:
    await engine.create_clinic("c1", "Clinic")
    await engine.create_queue("c1", "gp", "GP", "A")
    await engine.issue("gp", name="Sunita Devi")
    events = await engine.events_since("c1", 0)
    assert events is not None and len(events) == 3
    conn = redis.Redis.from_url(redis_url)
    settings = hooks.settings
    first = enqueue(conn, settings, events)
    assert enqueue(conn, settings, events) == 0  # the duty crashed before XACK and read it again
    assert 0 <= first <= 3  # the running duty may have enqueued some already
    issued = payload(events[2])
    assert issued["tickets"] and "name" not in issued["tickets"][0]
    conn.close()
