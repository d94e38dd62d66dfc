"""Rebuild: the live Redis state comes back from the SQLite record exactly, and goes on."""

from __future__ import annotations

import random

import redis.asyncio as aioredis
from support_durability import CLINICS, dump_live, make_clinics, random_operations, store  # noqa: F401

from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record import access
from qtraq_live.record.persister import FINAL_TTL_MS, Persister
from qtraq_live.record.rebuild import rebuild, record_has_clinics, redis_is_empty
from qtraq_live.record.store import Store


async def test_rebuild_restores_the_exact_live_state_and_it_continues(
        engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:
    await make_clinics(engine)
    tokens: dict[int, str] = {}
    rng = random.Random(20261125)
    persister = Persister(aredis, store)
    await random_operations(engine, rng, 120, tokens)
    await persister.drain()  # part of the history persisted earlier, the rest at the end
    await random_operations(engine, rng, 120, tokens)
    await persister.drain()

    live = await dump_live(aredis)
    snapshots = {c: await engine.clinic_snapshot(c) for c in CLINICS}
    tickets = {i: await engine.ticket(i) for i in tokens}
    some_tokens = rng.sample(sorted(tokens.values()), 8)
    by_token = {tok: await engine.ticket_by_token(tok) for tok in some_tokens}
    statuses = {t["status"] for t in tickets.values() if t}
    assert {"waiting", "called", "done", "cancelled"} <= statuses  # the mix really is mixed

    await aredis.flushall()
    assert await redis_is_empty(aredis) and await record_has_clinics(store)
    counts = await rebuild(store, aredis)

    assert counts["tickets"] == len(tokens) and counts["clinics"] == 2 and counts["queues"] == 3
    assert await dump_live(aredis) == live
    assert {c: await engine.clinic_snapshot(c) for c in CLINICS} == snapshots
    assert {i: await engine.ticket(i) for i in tokens} == tickets
    assert {tok: await engine.ticket_by_token(tok) for tok in some_tokens} == by_token

    # and the clinic goes on where it was
    before = {c: s["version"] for c, s in snapshots.items()}
    gp_labels = [t["label"] for t in tickets.values() if t and t["label"].startswith("A-")]
    new = await engine.issue("gp")
    assert new["id"] == max(tokens) + 1
    assert new["label"] == f"A-{max(int(x[2:]) for x in gp_labels) + 1:03d}"
    assert await engine.version("c1") == before["c1"] + 1
    await engine.issue("dent")
    assert await engine.version("c2") == before["c2"] + 1
    waiting = next(t for t in snapshots["c1"]["queues"][0]["waiting"])
    cancelled = await engine.cancel_by_token(tokens[waiting["id"]])  # an old token still works
    assert cancelled["status"] == "cancelled"
    assert await persister.drain() == 3  # the stream and group come back for the record
    row = await store.fetchone("SELECT type FROM events WHERE clinic = 'c1' AND version = ?", (before["c1"] + 2,))
    assert row == {"type": "cancelled"}


async def test_rebuild_replaces_the_live_state_and_nothing_else(engine: QueueEngine, aredis: aioredis.Redis,
                                                                 store: Store) -> None:
    await make_clinics(engine)
    await engine.issue("gp")
    await Persister(aredis, store).drain()
    await aredis.set("rq:queue:notify", "kept")
    await aredis.sadd("qt:notify:optout", "ticket:9")
    await aredis.set(keys.version("ghost"), 7)
    await aredis.hset(keys.ticket(999), "status", "waiting")
    await rebuild(store, aredis)
    assert await aredis.get("rq:queue:notify") == "kept"
    assert await aredis.smembers("qt:notify:optout") == {"ticket:9"}  # another layer's state
    assert not await aredis.exists(keys.version("ghost"), keys.ticket(999))
    assert (await engine.queue_snapshot("gp"))["waiting"][0]["label"] == "A-001"


async def test_rebuild_drains_the_streams_first(engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:
    """Run on a Redis that still answers, nothing the persister had not written yet is lost."""
    await make_clinics(engine)
    t = await engine.issue("lab")
    await rebuild(store, aredis)
    assert (await engine.ticket(t["id"]))["status"] == "waiting"
    assert await store.fetchval("SELECT count(*) FROM events") == await engine.version("c1") + await engine.version("c2")


async def test_ids_never_repeat_those_given_to_contacts(engine: QueueEngine, aredis: aioredis.Redis,
                                                        store: Store) -> None:
    """An id whose contact row was written but whose issue never happened stays used."""
    await make_clinics(engine)
    await engine.issue("gp")
    unused = await engine.allocate_ticket_id()
    await store.execute("INSERT INTO ticket_contacts (ticket_id, mobile, created_at) VALUES (?, ?, 0)",
                        (unused, "+919800000000"))
    await Persister(aredis, store).drain()
    await aredis.flushall()
    await rebuild(store, aredis)
    assert (await engine.issue("gp"))["id"] == unused + 1


async def test_old_final_tickets_stay_in_the_record_only(engine: QueueEngine, aredis: aioredis.Redis,
                                                         store: Store) -> None:
    await make_clinics(engine)
    old = await engine.issue("gp")
    live = await engine.issue("gp")
    await engine.cancel(old["id"])
    await Persister(aredis, store).drain()
    await aredis.flushall()
    later = int(await store.fetchval("SELECT updated_at FROM tickets WHERE id = ?", (old["id"],))) + FINAL_TTL_MS + 1
    counts = await rebuild(store, aredis, now_ms=later)
    assert counts["tickets"] == 1
    assert await engine.ticket(old["id"]) is None
    assert await engine.ticket_by_token(old["token"]) is None
    assert (await engine.ticket(live["id"]))["position"] == 1
    assert await store.fetchval("SELECT status FROM tickets WHERE id = ?", (old["id"],)) == "cancelled"


async def test_emptiness_checks(engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:
    assert await redis_is_empty(aredis)
    assert not await record_has_clinics(store)
    await make_clinics(engine)
    assert not await redis_is_empty(aredis)
    await Persister(aredis, store).drain()
    assert await record_has_clinics(store)
    await aredis.delete(keys.CLINICS, keys.TICKET_SEQ)
    assert await redis_is_empty(aredis)


async def test_staff_access_comes_back_with_the_queues(engine: QueueEngine, aredis: aioredis.Redis,
                                                       store: Store) -> None:
    """Rebuild hands the access mirrors (users, API tokens, display keys) to access.mirror_access."""
    await make_clinics(engine)
    uid = await access.create_user(store, aredis, "meera", "correct horse battery", "reception")
    token = await access.create_api_token(store, aredis, "meera")
    key = await access.create_display_key(store, aredis, "c1")
    await Persister(aredis, store).drain()
    await aredis.flushall()
    await rebuild(store, aredis)
    assert (await aredis.hgetall(keys.user(uid)))["username"] == "meera"
    assert await aredis.get(keys.api_token(token)) == str(uid)
    assert await aredis.get(keys.display_key(key)) == "c1"
