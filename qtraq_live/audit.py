"""The staff audit log: who did what, when, from where (ids only, never personal data).

A request appends its entry to the Redis stream ``qt:audit`` (one XADD: durable with the AOF,
and no SQLite lock on the request path — a "next" press must not wait for the persister's
transaction). The primary's duties process copies entries into the ``audit_log`` table in
the consumer group ``audit``, acknowledging and deleting them only after the commit, so an
entry is neither lost nor kept in Redis longer than needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis

from . import redis_keys as keys
from .queue_engine import Record
from .store import Store

log = logging.getLogger(__name__)

GROUP = "audit"
BATCH = 500
LINGER_S = 0.1  # after a batch, let the next gather (as the persister and the notifier do)
STREAM_MAXLEN = 1_000_000  # a safety cap only: the copier deletes what it has written


class Context(Protocol):
    redis: aioredis.Redis
    store: Store


def entry(actor: str, action: str, target: str = "", ip: str = "") -> Record:
    """One entry. Callers pass ids ("user:3", "ticket:42"), never names or contacts. Handed to
    the engine, it is appended with the change it records (see :class:`Record`)."""
    at = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Record(keys.AUDIT, {"at": at, "actor": actor, "action": action, "target": target, "ip": ip},
                  STREAM_MAXLEN)


async def append(client: aioredis.Redis, e: Record) -> None:
    """Append one entry on its own (for actions that are not an engine change)."""
    await client.xadd(e.stream, dict(e.fields), maxlen=e.maxlen, approximate=True)


async def _ensure_group(client: aioredis.Redis) -> None:
    try:
        await client.xgroup_create(keys.AUDIT, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def copy(client: aioredis.Redis, store: Store) -> int:
    """Copy what is waiting (first entries read before a crash, then new ones) into SQLite."""
    await _ensure_group(client)
    copied = 0
    for start in ("0", ">"):
        while n := await _copy_batch(client, store, start):
            copied += n
    return copied


async def _copy_batch(client: aioredis.Redis, store: Store, start: str, block_ms: int | None = None) -> int:
    """One batch: written in one transaction, acknowledged and deleted only after its commit."""
    resp = await client.xreadgroup(GROUP, "primary", {keys.AUDIT: start}, count=BATCH, block=block_ms)
    entries = resp[0][1] if resp else []
    if not entries:
        return 0
    async with store.transaction() as db:
        await db.executemany("INSERT INTO audit_log (at, actor, action, target, ip) VALUES (?, ?, ?, ?, ?)",
                             [(f["at"], f["actor"], f["action"], f["target"], f["ip"]) for _, f in entries])
    ids = [entry_id for entry_id, _ in entries]
    async with client.pipeline(transaction=False) as pipe:
        pipe.xack(keys.AUDIT, GROUP, *ids)
        pipe.xdel(keys.AUDIT, *ids)  # IP addresses: not kept in Redis once recorded
        await pipe.execute()
    return len(entries)


async def copy_loop(ctx: Context, stop: asyncio.Event) -> None:
    """The duty: copy as entries arrive until ``stop``. What a crash left unacknowledged is
    copied first (a failed batch ends the duty, and its restart begins here)."""
    await copy(ctx.redis, ctx.store)
    while not stop.is_set():
        try:
            await _copy_batch(ctx.redis, ctx.store, ">", 1000)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await _ensure_group(ctx.redis)  # Redis was wiped: nothing is pending any more
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LINGER_S)


async def entries(store: Store, *, start: str | None = None, end: str | None = None, actor: str | None = None,
                  action: str | None = None, before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Recorded entries, newest first: ``start <= at < end`` (ISO 8601 UTC text, which sorts as
    time does), ``actor`` exactly, ``action`` exactly or, ending in ``.``, as a prefix
    (``ticket.``); ``before`` an entry id (the next page starts below the last id shown)."""
    prefix = action is not None and action.endswith(".")
    rows = await store.fetchall(
        "SELECT id, at, actor, action, target, ip FROM audit_log"
        " WHERE (:start IS NULL OR at >= :start) AND (:end IS NULL OR at < :end)"
        " AND (:actor IS NULL OR actor = :actor)"
        " AND (:action IS NULL OR (CASE WHEN :prefix THEN substr(action, 1, length(:action)) = :action"
        " ELSE action = :action END))"
        " AND (:before IS NULL OR id < :before)"
        " ORDER BY id DESC LIMIT :limit",
        {"start": start, "end": end, "actor": actor, "action": action, "prefix": prefix, "before": before,
         "limit": limit})
    return [dict(r) for r in rows]

