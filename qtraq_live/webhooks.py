"""Signed outgoing webhooks: a hospital system follows ticket events as they happen.

The primary's ``webhooks`` duty reads every clinic's event stream in the consumer group
``webhooks`` and, for every URL in ``webhooks.urls``, enqueues one RQ job per event on the
``webhooks`` queue (retried with exponential backoff and jitter). A job signs the body at send
time, so every attempt carries a fresh timestamp:

    X-Qtraq-Delivery:  c1:42                       (clinic:version — unique per event)
    X-Qtraq-Event:     called
    X-Qtraq-Signature: t=1764050000,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>

Receivers recompute v1 with the shared secret (``QTRAQ_WEBHOOK_SECRET``), compare in constant
time, reject a ``t`` more than 5 minutes off, and drop a delivery id they have seen: delivery is
at least once (a receiver that answered 2xx but whose answer was lost gets the event again).
Bodies carry ids, labels, statuses and times — never names, contacts or tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from rq import Queue, Retry

from .config import Settings, load_settings
from .engine import live_schema
from .engine import redis_keys as keys
from .errors import ConfigError
from .queue_engine import parse_event
from .runtime import redis_conn
from .runtime.stream_consumer import Batch, StreamConsumer

log = logging.getLogger(__name__)

GROUP = "webhooks"
QUEUE = "webhooks"
TOLERANCE_S = 300
TICKET_FIELDS = live_schema.TICKET.seen(live_schema.HOOK)  # what a hospital system sees of a ticket
BLOCK_MS = 1000
DEDUPE_TTL_S = 7 * 86400


class Context(Protocol):
    settings: Settings
    redis: aioredis.Redis


def check_settings(settings: Settings) -> None:
    """Webhook URLs need a secret to sign with (checked at start, naming the key)."""
    for url in settings["webhooks.urls"]:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("webhooks.urls", f"{url!r} is not an http(s) URL")
    if settings["webhooks.urls"] and len(settings["webhooks.secret"]) < 16:
        raise ConfigError("webhooks.secret", "set QTRAQ_WEBHOOK_SECRET (16+ characters) to sign webhooks")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """What a receiver does (shown in docs/integrations.md): constant-time, 5 minute window."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > TOLERANCE_S:
        return False
    return hmac.compare_digest(signature(secret, ts, body), f"t={ts},v1={parts.get('v1', '')}")


def payload(ev: Mapping[str, Any]) -> dict[str, Any]:
    """The event as a hospital system sees it: the fields live_schema shows to ``hook``, no
    personal ones."""
    ticket, queue = live_schema.TICKET.seen(live_schema.HOOK), live_schema.QUEUE.seen(live_schema.HOOK)
    return {
        "id": f"{ev['clinic']}:{ev['v']}", "type": ev["type"], "clinic": ev["clinic"], "version": ev["v"],
        "at": ev["at"], "queue": ev.get("queue"),
        "tickets": [{k: t.get(k) for k in ticket} for t in ev["tickets"]],
        "queues": [{k: q.get(k) for k in queue} for q in ev["queues"]],
    }


def retry_intervals(attempts: int, base_s: float) -> list[int]:
    """Exponential backoff with ±25% jitter, so receivers coming back are not stampeded."""
    return [max(1, int(base_s * 2**i * random.uniform(0.75, 1.25))) for i in range(attempts - 1)]


class WebhookFailed(Exception):
    """A receiver did not answer 2xx; RQ retries the job (not an API error)."""


@lru_cache(maxsize=1)
def _secret() -> str:
    return str(load_settings(resolve_secret=False)["webhooks.secret"])


def deliver(url: str, delivery: str, event_type: str, body: str) -> int:
    """The RQ job: one signed POST. Raises on anything but 2xx so RQ retries it."""
    data = body.encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "qtraq-live-webhooks",
        "X-Qtraq-Delivery": delivery, "X-Qtraq-Event": event_type,
        "X-Qtraq-Signature": signature(_secret(), int(time.time()), data),
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        log.warning("webhook %s to %s: %s", delivery, _host(url), exc.__class__.__name__)
        raise WebhookFailed(f"{_host(url)} unreachable") from None
    if not 200 <= status < 300:
        log.warning("webhook %s to %s answered %s", delivery, _host(url), status)
        raise WebhookFailed(f"{_host(url)} answered {status}")
    log.info("webhook %s delivered to %s", delivery, _host(url))
    return status


def _host(url: str) -> str:
    return urllib.request.urlparse(url).netloc


def enqueue(conn: redis.Redis, settings: Settings, events: Sequence[Mapping[str, Any]]) -> int:
    """One job per (URL, event), at most once: a replayed batch after a crash adds nothing."""
    queue = Queue(QUEUE, connection=conn)
    attempts = settings["webhooks.max_attempts"]
    n = 0
    for ev in events:
        body = json.dumps(payload(ev), separators=(",", ":"))
        delivery = f"{ev['clinic']}:{ev['v']}"
        for url in settings["webhooks.urls"]:
            url_id = hashlib.sha256(url.encode()).hexdigest()[:16]
            if not conn.set(keys.webhook_sent(url_id, delivery), "1", nx=True, ex=DEDUPE_TTL_S):
                continue
            queue.enqueue(deliver, url, delivery, ev["type"], body, job_id=f"hook-{url_id}-{delivery.replace(':', '-')}",
                          retry=Retry(max=attempts - 1, interval=retry_intervals(attempts, settings["webhooks.retry_base_s"])),
                          result_ttl=3600, failure_ttl=7 * 86400)
            n += 1
    return n


async def run_webhooks(ctx: Context, stop: asyncio.Event) -> None:
    """The duty; returns at once when no URL is configured. When webhooks are first switched
    on, existing clinics start at their newest event (no backlog of old events); clinics
    created later are followed from their first event."""
    settings = ctx.settings
    if not settings["webhooks.urls"]:
        return
    check_settings(settings)
    first_run = bool(await ctx.redis.set(keys.WEBHOOKS_ENABLED, str(int(time.time())), nx=True))
    existing = {keys.events(c) for c in await ctx.redis.smembers(keys.CLINICS)} if first_run else set()
    conn = redis_conn.sync_client(settings, decode=False)

    async def handle(batch: Batch) -> None:
        events = [parse_event(fields["e"]) for entries in batch.values() for _, fields in entries]
        await asyncio.to_thread(enqueue, conn, settings, events)

    async def streams() -> list[str]:
        return [keys.events(c) for c in sorted(await ctx.redis.smembers(keys.CLINICS))]

    try:
        await StreamConsumer(ctx.redis, GROUP, "primary", handle, streams,
                             start=lambda stream: "$" if stream in existing else "0", batch=200,
                             block_ms=BLOCK_MS, refresh_s=BLOCK_MS / 1000, name="webhooks", logger=log).run(stop)
    finally:
        conn.close()
