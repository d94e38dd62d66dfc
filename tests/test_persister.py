"""The persister: every event in SQLite exactly once, whatever crashes, replays or outages."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from conftest import TIMEOUT_FACTOR
from support_durability import CLINICS, make_clinics, random_operations, store  # noqa: F401

from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine, iso
from qtraq_live.record.persister import FINAL_TTL_MS, GROUP, Persister
from qtraq_live.record.store import Store
from qtraq_live.runtime.embedded_redis import EmbeddedRedis

PERSISTER_PROCESS = """
import asyncio, sys
import redis.asyncio as aioredis
from qtraq_live.record.persister import Persister
from qtraq_live.record.store import Store

async def main() -> None:
    store = Store(sys.argv[2])
    await store.open()
    await Persister(aioredis.from_url(sys.argv[1], decode_responses=True), store,
                    batch=10, block_ms=100).run(asyncio.Event())

asyncio.run(main())
"""
SAME = ("clinic", "queue", "label", "status", "priority", "name", "lang", "counter", "recalls", "appointment_id",
        "source")


async def wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def total_versions(engine: QueueEngine) -> int:
    return sum([await engine.version(c) for c in await engine.clinic_ids()])


async def assert_record_matches(engine: QueueEngine, store: Store, tokens: dict[int, str]) -> None:
    """Each clinic's events 1..V once; each ticket row as the engine sees the ticket."""
    for clinic in await engine.clinic_ids():
        versions = [r["version"] for r in await store.fetchall(
            "SELECT version FROM events WHERE clinic = ? ORDER BY version", (clinic,))]
        assert versions == list(range(1, await engine.version(clinic) + 1))
    rows = {r["id"]: r for r in await store.fetchall("SELECT * FROM tickets")}
    assert sorted(rows) == sorted(tokens)
    for tid, token in tokens.items():
        live, row = await engine.ticket(tid), rows[tid]
        assert live is not None
        assert {k: row[k] for k in SAME} == {k: live[k] for k in SAME}
        assert [iso(row[k]) for k in ("created_at", "called_at", "served_at", "done_at")] == [
            live[k] for k in ("created_at", "called_at", "served_at", "done_at")]
        assert bool(row["notify"]) == live["notify"] and row["token"] == token


async def test_every_event_is_recorded_once_and_tickets_match_the_engine(
        engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:
    await make_clinics(engine)
    tokens: dict[int, str] = {}
    await random_operations(engine, random.Random(1), 200, tokens)
    persister = Persister(aredis, store)
    assert await persister.drain() == await total_versions(engine)
    await assert_record_matches(engine, store, tokens)
    bodies = " ".join(r["body"] for r in await store.fetchall("SELECT body FROM events"))
    assert "Asha" not in bodies and "Vikram" not in bodies  # names live in tickets.name only
    queues = await store.fetchall("SELECT id, clinic, ema_s, paused FROM queues ORDER BY clinic, created_version")
    for q in queues:
        live = await engine.get_queue(q["id"])
        assert (q["clinic"], q["ema_s"], bool(q["paused"])) == (live["clinic"], live["ema_s"], live["paused"])
    assert [q["id"] for q in queues] == [q for qs in CLINICS.values() for q in qs]
    assert await persister.drain() == 0


async def test_redelivery_creates_no_duplicates(engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:
    await make_clinics(engine)
    tokens: dict[int, str] = {}
    rng = random.Random(2)
    await random_operations(engine, rng, 80, tokens)
    await Persister(aredis, store).drain()
    before = await store.fetchall("SELECT * FROM tickets ORDER BY id")

    for clinic in CLINICS:  # the whole history delivered again
        await aredis.xgroup_setid(keys.events(clinic), GROUP, "0")
    assert await Persister(aredis, store).drain() == await total_versions(engine)
    assert await store.fetchall("SELECT * FROM tickets ORDER BY id") == before

    # a persister that read a batch and died before acknowledging it
    await random_operations(engine, rng, 40, tokens)
    await aredis.xreadgroup(GROUP, "persister-dead", {keys.events(c): ">" for c in CLINICS}, count=1000)
    assert (await aredis.xpending(keys.events("c1"), GROUP))["pending"] > 0
    assert await Persister(aredis, store, consumer="persister-new").drain() > 0
    for clinic in CLINICS:
        assert (await aredis.xpending(keys.events(clinic), GROUP))["pending"] == 0
    await assert_record_matches(engine, store, tokens)


async def test_final_tickets_expire_and_a_requeued_no_show_is_kept(
        engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:
    await make_clinics(engine)
    done = await engine.issue("gp")
    gone = await engine.issue("gp")
    await engine.next("gp")
    await engine.next("gp", "2")
    await engine.done(done["id"])
    await engine.no_show(gone["id"])
    persister = Persister(aredis, store)
    await persister.drain()
    for t in (done, gone):
        for key in (keys.ticket(t["id"]), keys.token(t["token"])):
            assert 0 < await aredis.pttl(key) <= FINAL_TTL_MS
    await engine.requeue(gone["id"])
    await persister.drain()
    assert await aredis.pttl(keys.ticket(gone["id"])) == -1
    assert await aredis.pttl(keys.token(gone["token"])) == -1


async def test_a_bad_event_is_left_pending_and_logged_without_data(
        engine: QueueEngine, aredis: aioredis.Redis, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await make_clinics(engine)
    await engine.issue("gp", name="Asha Rao")
    v = await engine.version("c1")
    await aredis.xadd(keys.events("c1"), {"e": '{"v": 99, "name": "Secret Name"'}, id=f"{v}-1")
    # a well-formed event whose ticket cannot be stored: nothing of it may remain
    await aredis.sadd(keys.CLINICS, "zz")
    await aredis.xadd(keys.events("zz"), {"e": json.dumps({
        "v": 1, "type": "issued", "clinic": "zz", "queue": "q", "at": 1,
        "tickets": [{"id": 777, "name": "Secret Name"}], "queues": []})}, id="1-0")
    await engine.issue("gp")
    caplog.set_level(logging.INFO)

    assert await Persister(aredis, store).drain() == await engine.version("c1") + await engine.version("c2")
    assert await store.fetchval("SELECT count(*) FROM events WHERE clinic = 'zz'") == 0
    assert await store.fetchval("SELECT count(*) FROM tickets WHERE id = 777") == 0
    assert (await aredis.xpending(keys.events("c1"), GROUP))["pending"] == 1
    assert (await aredis.xpending(keys.events("zz"), GROUP))["pending"] == 1
    assert f"{v}-1" in caplog.text and "1-0" in caplog.text
    assert "Secret" not in caplog.text and "Asha" not in caplog.text


async def test_entries_trimmed_before_persisting_are_reported_and_released(
        engine: QueueEngine, aredis: aioredis.Redis, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await make_clinics(engine)
    for clinic in CLINICS:
        await aredis.xgroup_create(keys.events(clinic), GROUP, id="0")
    await aredis.xreadgroup(GROUP, "persister-dead", {keys.events(c): ">" for c in CLINICS}, count=100)
    await aredis.xtrim(keys.events("c1"), maxlen=0)  # the stream moved on while nobody persisted
    assert await Persister(aredis, store).drain() == await total_versions(engine)
    assert "trimmed before they were persisted" in caplog.text
    assert (await aredis.xpending(keys.events("c1"), GROUP))["pending"] == 0
    assert await store.fetchval("SELECT count(*) FROM events WHERE clinic = 'c2'") == await engine.version("c2")


async def test_run_follows_new_clinics_and_a_redis_wipe(
        engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(Persister(aredis, store, block_ms=100).run(stop))
    try:
        await make_clinics(engine)  # created after the persister started
        await engine.issue("dent")
        await wait_for(lambda: _count(store, "c2", 3), "c2's events")
        await aredis.flushall()
        await engine.create_clinic("c9", "After the wipe")
        await wait_for(lambda: _count(store, "c9", 1), "the new clinic's event")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10 * TIMEOUT_FACTOR)


async def _count(store: Store, clinic: str, n: int) -> bool:
    return await store.fetchval("SELECT count(*) FROM events WHERE clinic = ?", (clinic,)) >= n


async def test_a_redis_outage_is_logged_once_and_survived(
        tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qtraq_live.record.persister")
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    client = aioredis.from_url(server.url, decode_responses=True)
    engine = QueueEngine(client)
    stop = asyncio.Event()
    task = asyncio.create_task(Persister(client, store, block_ms=100).run(stop))
    try:
        await make_clinics(engine)
        await wait_for(lambda: _count(store, "c2", 2), "the first events")
        server.stop()
        await wait_for(lambda: _logged(caplog, "persister paused"), "the outage to be noticed")
        await asyncio.sleep(0.3)  # let the persister retry a few times against the dead socket
        server.start()
        await engine.issue("dent")
        await wait_for(lambda: _count(store, "c2", 3), "events after the outage")
        assert caplog.text.count("persister paused") == 1
        assert "persister resumed" in caplog.text
    finally:
        stop.set()
        await asyncio.wait_for(task, 10 * TIMEOUT_FACTOR)
        await client.aclose()
        server.stop()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text


async def test_a_killed_persister_process_loses_nothing(
        engine: QueueEngine, aredis: aioredis.Redis, redis_url: str, store: Store) -> None:
    await make_clinics(engine)
    tokens: dict[int, str] = {}
    issuing = asyncio.Event()
    issuing.set()

    async def reception() -> None:
        while issuing.is_set():
            t = await engine.issue(random.choice(["gp", "lab", "dent"]))
            tokens[t["id"]] = t["token"]
            await asyncio.sleep(0.002)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", PERSISTER_PROCESS, redis_url, str(store.path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    issuer = asyncio.create_task(reception())
    first = start()
    try:
        await wait_for(lambda: _count(store, "c1", 30), "the first process to persist")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        await asyncio.sleep(0.05)  # more events while no persister runs
        second = start()
        try:
            await wait_for(lambda: _count(store, "c1", len(tokens) // 2), "the second process to catch up")
            issuing.clear()
            await issuer
            total = await total_versions(engine)
            await wait_for(lambda: _all_in(store, total), "every event")
        finally:
            second.terminate()
            _, err = second.communicate(timeout=10)
        assert b"Traceback" not in err
    finally:
        issuing.clear()
        await issuer
        if first.poll() is None:
            first.kill()
            first.wait()
    await assert_record_matches(engine, store, tokens)


async def _all_in(store: Store, total: int) -> bool:
    return await store.fetchval("SELECT count(*) FROM events") == total


async def test_the_eta_shown_at_issue_is_kept_beside_the_real_wait(engine: QueueEngine, aredis: aioredis.Redis,
                                                                    store: Store) -> None:
    """ETA quality needs, for every served ticket, what it was told and what happened."""
    await engine.create_clinic("e1", "ETA clinic")
    await engine.create_queue("e1", "eq", "Q", "E", avg_service_s=240)
    shown = [await engine.issue("eq") for _ in range(3)]
    await engine.next("eq", "1")
    await Persister(aredis, store).drain()
    rows = await store.fetchall("SELECT id, issue_ahead, eta_issue_s, created_at, called_at FROM tickets "
                                "WHERE queue = 'eq' ORDER BY id")
    assert [(r["issue_ahead"], r["eta_issue_s"]) for r in rows] == [(t["ahead"], t["eta_s"]) for t in shown]
    assert rows[0]["called_at"] >= rows[0]["created_at"] and rows[1]["called_at"] is None


async def test_one_batch_keeps_what_only_a_first_event_knows(engine: QueueEngine, aredis: aioredis.Redis,
                                                             store: Store) -> None:
    """A batch writes each queue's and ticket's first and last row only: the first may insert."""
    await make_clinics(engine)
    t = await engine.issue("gp")
    await engine.transfer(t["id"], "lab")
    await engine.update_queue("lab", notify_ahead=5)
    await engine.next("lab", "1")
    await Persister(aredis, store).drain()  # one batch
    row = await store.fetchone("SELECT queue, issued_queue, status, updated_version FROM tickets WHERE id = ?",
                               (t["id"],))
    version = await engine.version("c1")
    assert row == {"queue": "lab", "issued_queue": "gp", "status": "called", "updated_version": version}
    lab = await store.fetchone("SELECT created_version, updated_version, notify_ahead FROM queues WHERE id = 'lab'")
    assert lab == {"created_version": 3, "updated_version": version, "notify_ahead": 5}
    assert await store.fetchval("SELECT version FROM clinic_versions WHERE clinic = 'c1'") == version
