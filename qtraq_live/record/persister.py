"""Clinic event streams → the SQLite record (consumer group ``persist``).

Each batch read from the streams is applied in one SQLite transaction and acknowledged
(XACK) only after the commit, so a crash at any point loses nothing: un-acknowledged entries
stay pending and are claimed and replayed at the next start. Applying is idempotent (events
are keyed by ``(clinic, version)``, rows keep the state of the newest version), so a replay
is harmless. A bad event is logged by its id, left pending and skipped; a Redis or disk
outage is logged once and retried with backoff.

What the rows hold and how each field is stored comes from ``live_schema`` (the columns of
``TICKET``, ``QUEUE`` and ``CLINIC``). A few things the live state holds are in no event and are
read with the batch through ``live_reads`` (the engine's reads): the ticket token, the
clinic's arrival stamp and, for each queue the batch touched, when each of its counters last
pressed "next" and the queue hash fields no column holds (pause timing, what the wait
estimator learnt), kept as JSON in ``queues.extra``. They are read after the events, so they may be a
little newer than the last persisted event, never older. After the commit, tickets in a final
state get a TTL of :data:`FINAL_TTL_MS` on their Redis keys (the record keeps them); rebuild
restores the same window with the same deadlines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from ..engine import live_reads, live_schema
from ..engine import redis_keys as keys
from ..engine.eta import estimate
from ..engine.live_schema import Enc, Entity
from ..errors import Unavailable
from ..queue_engine import parse_event
from ..runtime.stream_consumer import Acks, Batch, StreamConsumer
from .store import Store

log = logging.getLogger(__name__)

GROUP = "persist"
FINAL = frozenset({"done", "no_show", "cancelled"})
FINAL_TTL_MS = 2 * 86_400_000  # final tickets stay live this long after their last change
PERSISTED_SCRIPT = resources.files("qtraq_live").joinpath("lua/persisted.lua").read_text()

Json = dict[str, Any]


Rows = dict[str, list[tuple[Any, ...]]]  # table -> rows one event writes


@dataclass
class Entry:
    clinic: str
    entry_id: str
    event: Json | None = None  # None: trimmed away or unreadable
    rows: Rows | None = None
    trimmed: bool = False


@dataclass
class Live:
    """What a batch needs from Redis besides the events."""

    tokens: dict[int, str] = field(default_factory=dict)
    arrival: dict[str, int] = field(default_factory=dict)
    seen: dict[str, dict[str, str]] = field(default_factory=dict)
    queue_extra: dict[str, dict[str, str]] = field(default_factory=dict)  # hash fields no column holds


@dataclass
class TtlPlan:
    """Redis keys of final tickets to expire (deadline in epoch ms), and of revived ones to keep."""

    expire: list[tuple[str, int]] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)


class Persister:
    """One consumer of group ``persist`` on every clinic stream; one per primary. Reading,
    claiming, retrying and backoff are the :class:`~qtraq_live.runtime.stream_consumer.StreamConsumer`'s."""

    def __init__(self, redis: aioredis.Redis, store: Store, consumer: str | None = None, *,
                 batch: int = 500, block_ms: int = 1000, linger_s: float = 0.1) -> None:
        self.redis = redis
        self.store = store
        self._persisted = redis.register_script(PERSISTED_SCRIPT)
        # linger: under load one transaction per event costs more than the events, so after a
        # short batch the next one gathers a moment (the live state is in Redis already).
        self.consumer = StreamConsumer(redis, GROUP, consumer or f"persister-{os.getpid()}", self._handle,
                                       self._streams, self_ack=True, batch=batch, block_ms=block_ms,
                                       linger_s=linger_s, name="persister", logger=log)

    async def run(self, stop: asyncio.Event) -> None:
        """Persist until ``stop`` is set. Outages are logged once and retried with backoff."""
        await self.consumer.run(stop)

    async def drain(self) -> int:
        """Persist everything the streams hold now (pending entries included); the count."""
        return await self.consumer.drain()

    async def _streams(self) -> list[str]:
        return [keys.events(c) for c in sorted(await self.redis.smembers(keys.CLINICS))]

    async def _handle(self, batch: Batch) -> Acks:
        entries = [_entry(clinic, entry_id, fields) for stream, items in batch.items()
                   if (clinic := keys.clinic_of_events(stream)) is not None for entry_id, fields in items]
        return await self._persist(entries)

    # -- writing ------------------------------------------------------------------------

    async def _persist(self, entries: list[Entry]) -> Acks:
        """One transaction for the batch, then TTLs on final tickets and XACK in one round trip;
        what it acknowledged (an unreadable event stays pending)."""
        good = [e for e in entries if e.rows is not None]
        live = await self._live([e.event for e in good if e.event])
        async with self.store.transaction() as db:
            try:
                async with db.transaction():
                    await write_rows(db, [e.rows for e in good if e.rows], live.tokens)
                done = good
            except Unavailable:
                raise
            except Exception:  # some event cannot be stored: find it, one at a time
                done = [e for e in good if await _write_one(db, e, live)]
            await _apply_live(db, live)
            ttl = await _ttl_plan(db, [e.event for e in done if e.event])
        trimmed = [e for e in entries if e.trimmed]
        if trimmed:
            log.error("%d stream entries were trimmed before they were persisted (first %s of clinic %s)",
                      len(trimmed), trimmed[0].entry_id, trimmed[0].clinic)
        return await self._release(done + trimmed, ttl)

    async def _live(self, events: list[Json]) -> Live:
        issued = [int(t["id"]) for ev in events if ev["type"] == "issued" for t in ev["tickets"]]
        clinics = sorted({ev["clinic"] for ev in events if ev["type"] == "issued"})
        queues = sorted({q["id"] for ev in events for q in ev["queues"]})
        got = await live_reads.persister_extras(self.redis, issued, clinics, queues)
        columns = {f.name for f in live_schema.QUEUE.columns}
        return Live(got.tokens, got.arrival, got.seen,
                    {q: {k: v for k, v in h.items() if k not in columns} for q, h in got.queues.items()})

    async def _release(self, entries: Iterable[Entry], plan: TtlPlan) -> Acks:
        """TTLs of the batch's final tickets, then XACK of its entries (``lua/persisted.lua``)."""
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(keys.events(e.clinic), []).append(e.entry_id)
        if not (by_stream or plan.expire or plan.keep):
            return by_stream
        args: list[Any] = [GROUP, len(plan.expire), len(plan.keep), *(deadline for _, deadline in plan.expire)]
        for ids in by_stream.values():
            args += [len(ids), *ids]
        await self._persisted(keys=[*(key for key, _ in plan.expire), *plan.keep, *by_stream], args=args)
        return by_stream


def _entry(clinic: str, entry_id: str, fields: dict[str, str] | None) -> Entry:
    """A stream entry, its event and the rows it writes; unreadable ones are logged by id."""
    if not fields:
        return Entry(clinic, entry_id, trimmed=True)  # trimmed while pending: can never be persisted
    try:
        ev = parse_event(fields["e"])
        if ev["clinic"] != clinic or f"{int(ev['v'])}-0" != entry_id:
            raise ValueError("event does not match its stream entry")
        return Entry(clinic, entry_id, ev, event_rows(ev))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        log.error("unreadable event %s in clinic %s (%s); left pending", entry_id, clinic, type(exc).__name__)
        return Entry(clinic, entry_id)


async def _write_one(db: Store, e: Entry, live: Live) -> bool:
    """Write one event inside the batch transaction; a bad event is rolled back alone."""
    try:
        async with db.transaction():
            await write_rows(db, [e.rows] if e.rows else [], live.tokens)
        return True
    except Unavailable:
        raise
    except Exception as exc:
        log.error("event %s of clinic %s not persisted (%s); left pending", e.entry_id, e.clinic,
                  type(exc).__name__)
        return False


# Upserts: an older state never overwrites a newer one (redelivery in any order is harmless).
# A field described as ``fixed`` (a ticket's id, clinic and day...) is written by the insert and
# left alone by an update (and so are the indexes on it). The columns each table's row carries
# are the entity's described event columns, then the record's own.
TICKET_EXTRA = ("issued_queue", "updated_version", "updated_at", "token")
QUEUE_EXTRA = ("created_at", "created_version", "updated_version")
CLINIC_EXTRA = ("created_at", "updated_version")


def _upsert(e: Entity, extra: tuple[str, ...], also: str = "") -> str:
    names = [f.name for f in e.event_columns] + list(extra)
    updates = [f"{f.name} = excluded.{f.name}" for f in e.event_columns if not f.fixed] + [also]
    return (f"INSERT INTO {e.table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT (id) DO UPDATE SET {', '.join(u for u in updates if u)}, "
            f"updated_version = excluded.updated_version WHERE excluded.updated_version > {e.table}.updated_version")


def statements() -> dict[str, str]:
    """Table -> the statement that writes its rows, for the entities as described now."""
    ticket, queue, clinic = live_schema.entities()
    return {"events": _EVENTS_SQL, "clinics": _upsert_of(clinic), "queues": _upsert_of(queue),
            "tickets": _upsert_of(ticket), "ticket_eta": _ETA_SQL, "clinic_versions": _VERSIONS_SQL}


@live_schema.per_entity
def _upsert_of(e: Entity) -> str:
    if e.table == "tickets":
        return _upsert(e, TICKET_EXTRA, "token = coalesce(tickets.token, excluded.token), updated_at = excluded.updated_at")
    return _upsert(e, QUEUE_EXTRA if e.table == "queues" else CLINIC_EXTRA)


_EVENTS_SQL = ("INSERT OR IGNORE INTO events (clinic, version, type, at, queue, ticket_ids, body) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)")
_ETA_SQL = "UPDATE tickets SET eta_issue_s = ? WHERE id = ?"
_VERSIONS_SQL = ("INSERT INTO clinic_versions (clinic, version) VALUES (?, ?) "
                 "ON CONFLICT (clinic) DO UPDATE SET version = max(version, excluded.version)")


# Tables keyed by the row's first value whose upsert keeps the newest version: of one key's rows
# in a batch only the first (it may insert: created_at, issued_queue) and the last matter.
NEWEST_WINS = frozenset({"clinics", "queues", "tickets", "clinic_versions"})

Reader = Callable[[Any], Any]


def _ms(val: Any) -> int | None:
    return int(val) if val else None


def _count(val: Any) -> int:
    return int(val or 0)


def _flag(val: Any) -> int:
    return int(bool(val))


def _column_reader(f: live_schema.Field) -> Reader | None:
    """How a state's field is stored in its column (None: as it is)."""
    if f.default is not None:
        default = f.default  # states older than the field carry none
        return lambda v: v or default
    return {Enc.ID: _count, Enc.NUM: _count, Enc.TIME: _ms, Enc.FLAG: _flag}.get(f.enc)


@live_schema.per_entity
def _readers(e: Entity) -> tuple[tuple[str, Reader | None], ...]:
    return tuple((f.name, _column_reader(f)) for f in e.event_columns)


def _row(readers: tuple[tuple[str, Reader | None], ...], state: Json) -> tuple[Any, ...]:
    get = state.get
    return tuple([get(k) if read is None else read(get(k)) for k, read in readers])


def event_rows(ev: Json) -> Rows:
    """The rows one event writes (ticket rows without their token, which Redis supplies).
    Raises on a malformed event, before anything is written."""
    v, at, clinic, etype = int(ev["v"]), int(ev["at"]), str(ev["clinic"]), str(ev["type"])
    tickets, queues = list(ev["tickets"]), ev["queues"]
    body = dict(ev, tickets=[_nameless(t) for t in tickets])
    state = ev.get("clinic_state")
    issued = etype == "issued"
    ticket_cols = _readers(live_schema.TICKET)
    rows: Rows = {
        "events": [(clinic, v, etype, at, ev.get("queue"), orjson.dumps([int(t["id"]) for t in tickets]).decode(),
                    orjson.dumps(body).decode())],
        "clinics": [(*_row(_readers(live_schema.CLINIC), state), at, v)] if state else [],
        "queues": [(*_row(_readers(live_schema.QUEUE), q), at, v, v) for q in queues],
        "tickets": [(*_row(ticket_cols, t), t["queue"] if issued else None, v, at) for t in tickets],
        "ticket_eta": [],
        "clinic_versions": [(clinic, v)],
    }
    if issued and tickets and queues:
        # The ETA the patient was shown, kept beside the real wait (called_at - created_at).
        q = queues[0]
        eta = estimate(int(tickets[0].get("issue_ahead") or 0), q).eta_s
        rows["ticket_eta"].append((eta, int(tickets[0]["id"])))
    return rows


def _nameless(t: Json) -> Json:
    """A ticket as the events table keeps it: names stay out of the record's history."""
    t = dict(t)
    t.pop("name", None)
    return t


async def write_rows(db: Store, batch: list[Rows], tokens: dict[int, str]) -> None:
    """Write the rows of a batch of events, table by table, in event order (of the tables in
    :data:`NEWEST_WINS`, each key's first and last row only: a batch often touches a queue twice)."""
    for table, sql in statements().items():
        rows = [row for rows in batch for row in rows[table]]
        if table in NEWEST_WINS:
            rows = _first_and_last(rows)
        if table == "tickets":
            rows = [(*row, tokens.get(row[0])) for row in rows]
        if rows:
            await db.executemany(sql, rows)


def _first_and_last(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    first: dict[Any, tuple[Any, ...]] = {}
    last: dict[Any, tuple[Any, ...]] = {}
    for row in rows:
        first.setdefault(row[0], row)
        last[row[0]] = row
    return [*first.values(), *(row for key, row in last.items() if row is not first[key])]


async def _apply_live(db: Store, live: Live) -> None:
    """One statement per kind for the whole batch: each call is a round trip to SQLite's thread."""
    if live.arrival:
        await db.executemany("UPDATE clinic_versions SET arrival = max(coalesce(arrival, 0), ?) WHERE clinic = ?",
                             [(arrival, clinic) for clinic, arrival in live.arrival.items()])
    seen = [(queue, counter, int(float(at)))
            for queue, counters in live.seen.items() for counter, at in counters.items()]
    if seen:
        await db.executemany(
            "INSERT INTO counters_seen (queue, counter, seen_at) VALUES (?, ?, ?) ON CONFLICT (queue, counter) "
            "DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)", seen)
    if live.queue_extra:
        await db.executemany("UPDATE queues SET extra = ? WHERE id = ?",
                             [(json.dumps(extra, sort_keys=True), queue) for queue, extra in live.queue_extra.items()])


async def _ttl_plan(db: Store, events: list[Json]) -> TtlPlan:
    """Keys to expire (final tickets: last change + FINAL_TTL_MS) or to keep again (a no-show
    requeued: back from a final state)."""
    latest: dict[int, tuple[str, int]] = {}
    revived: set[int] = set()
    for ev in events:
        for t in ev["tickets"]:
            latest[int(t["id"])] = (t["status"], int(ev["at"]))
            if t.get("prev_status") in FINAL and t["status"] not in FINAL:
                revived.add(int(t["id"]))
    plan = TtlPlan()
    ids = sorted(tid for tid, (status, _) in latest.items() if status in FINAL or tid in revived)
    if not ids:
        return plan
    rows = await db.fetchall(f"SELECT id, token FROM tickets WHERE id IN ({', '.join('?' * len(ids))})", ids)
    token_of = {r["id"]: r["token"] for r in rows}
    for tid in ids:
        status, at = latest[tid]
        ticket_keys = live_reads.ticket_keys(tid, token_of.get(tid))
        if status in FINAL:
            plan.expire += [(k, at + FINAL_TTL_MS) for k in ticket_keys]
        else:
            plan.keep += ticket_keys
    return plan
