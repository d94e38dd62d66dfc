"""SQLite record → live Redis state (``qtraq-live rebuild``, and at start when Redis is empty).

With the server stopped, the live queue state (the ``qt:`` keys in :data:`REPLACED`) is
replaced, in one MULTI/EXEC, by the state the record holds: clinics, queues (creation order, ``ema_s``, paused), live tickets (waiting,
called, serving, skipped) and final ones changed within :data:`~qtraq_live.record.persister.FINAL_TTL_MS`
(with the TTL the persister would have given them), waiting sets with their exact scores,
counters, open-counter times, today's label sequences, tokens, the ticket id sequence, each
clinic's version and arrival stamp and its recent calls. RQ's ``rq:`` keys are left alone.
The event streams start empty: a client resuming from an older version gets a snapshot.

If Redis still answers, the persister first drains the streams so nothing persisted late is
lost; then the access mirrors (users, API tokens, display keys) are rewritten by
``qtraq_live.record.access.mirror_access`` when that module is installed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis

from ..accounts import payments
from ..engine import live_schema
from ..engine import redis_keys as keys
from ..engine.live_schema import Enc, Entity, Field
from .access import mirror_access
from .persister import FINAL, FINAL_TTL_MS, Persister
from .store import Row, Store

log = logging.getLogger(__name__)

ACTIVE = ("waiting", "called", "serving", "skipped")
LABEL_TTL_MS = live_schema.LABEL_TTL_S * 1000  # the engine's EXPIRE on a label sequence
RECENT = live_schema.RECENT_CALLS              # the engine's LTRIM of the recent calls
DELETE_CHUNK = 500
# What a rebuild replaces: the live queue state and the access mirrors (restored by
# access.mirror_access). Other layers' keys (sessions, rate limits, notice ledger, opt-outs,
# channel overrides) are theirs to keep or restore; RQ's `rq:` keys are never touched.
REPLACED = (keys.CLINICS, "qt:c:*", "qt:q:*", "qt:t:*", "qt:tok:*", "qt:seq:*", "qt:idem:*",
            "qt:user:*", "qt:apitok:*", "qt:dk:*", "qt:dkeys:*")


async def redis_is_empty(redis: aioredis.Redis) -> bool:
    """No clinic and no ticket sequence: the live state is gone (new install or lost data)."""
    return int(await redis.exists(keys.CLINICS, keys.TICKET_SEQ)) == 0


async def record_has_clinics(store: Store) -> bool:
    return await store.fetchone("SELECT 1 AS one FROM clinics LIMIT 1") is not None


async def rebuild(store: Store, redis: aioredis.Redis, *, drain: bool = True,
                  now_ms: int | None = None) -> dict[str, int]:
    """Replace the live state with the record's; returns counts of what was restored."""
    if drain and not await redis_is_empty(redis):
        drained = await Persister(redis, store, consumer="rebuild").drain()
        log.info("rebuild: persisted %d pending events first", drained)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    state = await _read_record(store, now)
    old_keys = sorted({k for pattern in REPLACED async for k in redis.scan_iter(match=pattern, count=1000)})
    seq = max(state["max_id"], int(await redis.get(keys.TICKET_SEQ) or 0))

    async with redis.pipeline(transaction=True) as pipe:
        for i in range(0, len(old_keys), DELETE_CHUNK):
            pipe.delete(*old_keys[i:i + DELETE_CHUNK])
        _write_definitions(pipe, state)
        _write_counters(pipe, state)
        counts = _write_tickets(pipe, state["tickets"])
        _write_labels(pipe, state["labels"])
        if seq:
            pipe.set(keys.TICKET_SEQ, seq)
        await pipe.execute()

    await mirror_access(store, redis)  # users, API tokens, display keys
    await payments.mirror_all(store, redis)  # the ticket page's UPI settings (#22)
    counts.update(clinics=len(state["clinics"]), queues=len(state["queues"]), keys_replaced=len(old_keys))
    log.info("rebuild done: %s", counts)
    return counts


async def _read_record(store: Store, now: int) -> dict[str, Any]:
    clinics = await store.fetchall(
        "SELECT c.*, v.version, v.arrival FROM clinics c LEFT JOIN clinic_versions v ON v.clinic = c.id ORDER BY c.id")
    queues = await store.fetchall("SELECT * FROM queues ORDER BY clinic, created_version, id")
    seen = await store.fetchall("SELECT queue, counter, seen_at FROM counters_seen")
    tickets = await store.fetchall(
        f"SELECT * FROM tickets WHERE status IN ({', '.join('?' * len(ACTIVE))}) "
        f"UNION SELECT * FROM tickets WHERE status IN ({', '.join('?' * len(FINAL))}) AND updated_at > ? "
        "ORDER BY id", (*ACTIVE, *sorted(FINAL), now - FINAL_TTL_MS))
    labels = await store.fetchall(
        "SELECT coalesce(issued_queue, queue) AS queue, day, "
        "max(CAST(substr(label, instr(label, '-') + 1) AS INTEGER)) AS n, max(created_at) AS last "
        "FROM tickets WHERE created_at > ? GROUP BY 1, 2", (now - LABEL_TTL_MS,))
    max_id = await store.fetchone(
        "SELECT max(coalesce((SELECT max(id) FROM tickets), 0), "
        "coalesce((SELECT max(ticket_id) FROM ticket_contacts), 0)) AS n")
    recent = {c["id"]: await _recent_calls(store, c["id"]) for c in clinics}
    return {"clinics": clinics, "queues": queues, "seen": seen, "tickets": tickets, "labels": labels,
            "max_id": int(max_id["n"] if max_id else 0), "recent": recent}


async def _recent_calls(store: Store, clinic: str) -> list[str]:
    """The clinic's last calls and recalls, newest first, as the engine's `recent` entries."""
    rows = await store.fetchall(
        "SELECT at, body FROM events WHERE clinic = ? AND type IN ('called', 'recalled') "
        "ORDER BY version DESC LIMIT ?", (clinic, RECENT))
    out = []
    for row in rows:
        called = json.loads(row["body"])["tickets"][-1]
        out.append(json.dumps({"label": called["label"], "counter": called["counter"],
                               "queue": called["queue"], "at": row["at"]}))
    return out


def _write_definitions(pipe: Any, state: dict[str, Any]) -> None:
    clinic, queue = live_schema.CLINIC, live_schema.QUEUE
    for c in state["clinics"]:
        cid = c["id"]
        pipe.hset(keys.clinic(cid), mapping=hash_of(clinic, c))
        pipe.sadd(keys.CLINICS, cid)
        if c["version"]:
            pipe.set(keys.version(cid), c["version"])
        if c["arrival"]:
            pipe.set(keys.arrival(cid), c["arrival"])
        if state["recent"][cid]:
            pipe.rpush(keys.recent(cid), *state["recent"][cid])
    order: dict[str, int] = defaultdict(int)
    for q in state["queues"]:
        pipe.hset(keys.queue(q["id"]), mapping={**json.loads(q["extra"] or "{}"), **hash_of(queue, q)})
        pipe.zadd(keys.clinic_queues(q["clinic"]), {q["id"]: order[q["clinic"]]})
        order[q["clinic"]] += 1


def _write_counters(pipe: Any, state: dict[str, Any]) -> None:
    """When each counter last pressed "next", and which of them hold nobody now (idle)."""
    busy = {(t["queue"], t["counter"]) for t in state["tickets"]
            if t["status"] in ("called", "serving") and t["counter"]}
    for s in state["seen"]:
        pipe.hset(keys.counters_seen(s["queue"]), s["counter"], s["seen_at"])
        if (s["queue"], s["counter"]) not in busy:
            pipe.zadd(keys.counters_idle(s["queue"]), {s["counter"]: s["seen_at"]})


def _write_tickets(pipe: Any, tickets: list[Row]) -> dict[str, int]:
    counts = {"tickets": 0, "waiting": 0, "tokens": 0}
    ticket = live_schema.TICKET
    for t in tickets:
        tid = t["id"]
        pipe.hset(keys.ticket(tid), mapping=hash_of(ticket, t))
        counts["tickets"] += 1
        if t["status"] == "waiting":
            pipe.zadd(keys.waiting(t["queue"]), {str(tid): t["score"]})
            counts["waiting"] += 1
        elif t["status"] in ("called", "serving") and t["counter"]:
            pipe.hset(keys.counters(t["queue"]), t["counter"], tid)
        if t["token"]:
            pipe.set(keys.token(t["token"]), tid)
            counts["tokens"] += 1
        if t["status"] in FINAL:
            deadline = int(t["updated_at"]) + FINAL_TTL_MS
            pipe.pexpireat(keys.ticket(tid), deadline)
            if t["token"]:
                pipe.pexpireat(keys.token(t["token"]), deadline)
    return counts


def _write_labels(pipe: Any, labels: list[Row]) -> None:
    for row in labels:
        key = keys.labels(row["queue"], row["day"])
        pipe.set(key, row["n"])
        pipe.pexpireat(key, int(row["last"]) + LABEL_TTL_MS)


def hash_of(e: Entity, row: Row) -> dict[str, str]:
    """A record row as the engine keeps it in the entity's hash: every described field with a
    column (a live-only field restarts empty, or from ``queues.extra``)."""
    return {f.name: _hash_value(f, row[f.name]) for f in e.columns if f.hashed}


def _hash_value(f: Field, value: Any) -> str:
    """A column's value as the hash holds it ('' or '0' when unset, '1'/'0' for a flag)."""
    if value is None:
        return f.empty()
    if f.enc is Enc.FLAG:
        return "1" if value else "0"
    return str(value)
