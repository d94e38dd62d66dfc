"""The ticket field ``source``: how a ticket came (desk, self check-in, appointment, import,
ABDM Scan & Share), set on every issue path, kept through the record and a rebuild, added to
databases made before it existed, and broken down in the statistics."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from qtraq_live.errors import Invalid
from qtraq_live.queue_engine import SOURCES, QueueEngine, TicketSource
from qtraq_live.record.persister import Persister
from qtraq_live.record.rebuild import rebuild
from qtraq_live.record.store import Store
from qtraq_live.webhooks import TICKET_FIELDS as WEBHOOK_FIELDS
from tests.support_http import LiveServer, app_server  # noqa: F401

OLD_TICKETS = """CREATE TABLE tickets (id INTEGER PRIMARY KEY, clinic TEXT NOT NULL, queue TEXT NOT NULL,
    issued_queue TEXT, label TEXT NOT NULL, status TEXT NOT NULL, prev_status TEXT,
    priority INTEGER NOT NULL DEFAULT 0, score TEXT NOT NULL, name TEXT, token TEXT,
    notify INTEGER NOT NULL DEFAULT 0, lang TEXT, counter TEXT, recalls INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER, called_at INTEGER, served_at INTEGER, done_at INTEGER, day TEXT NOT NULL,
    appointment_id TEXT, issue_ahead INTEGER NOT NULL DEFAULT 0, eta_issue_s INTEGER,
    updated_version INTEGER NOT NULL DEFAULT 0, updated_at INTEGER)"""


async def _clinic(engine: QueueEngine) -> None:
    await engine.create_clinic("c1", "Clinic", timezone="UTC")
    await engine.create_queue("c1", "gp", "GP", "A")


async def test_the_engine_keeps_how_a_ticket_came(engine: QueueEngine) -> None:
    await _clinic(engine)
    desk = await engine.issue("gp")
    abha = await engine.issue("gp", source=TicketSource.ABDM)
    assert (desk["source"], abha["source"]) == ("reception", "abdm")
    called = await engine.next("gp", "1")
    assert called is not None and called["source"] == "reception"
    assert (await engine.ticket(abha["id"]))["source"] == "abdm"
    with pytest.raises(Invalid) as err:
        await engine.issue("gp", source="fax")
    assert err.value.field == "source"
    assert SOURCES == ("reception", "self", "appointment", "import", "abdm")
    assert "source" in WEBHOOK_FIELDS


async def test_a_ticket_from_before_the_field_reads_as_the_desk(engine: QueueEngine, aredis: aioredis.Redis) -> None:
    await _clinic(engine)
    t = await engine.issue("gp", source="self")
    await aredis.hdel(f"qt:t:{t['id']}", "source")  # as an older server left it
    assert (await engine.ticket(t["id"]))["source"] == "reception"


async def test_the_record_and_a_rebuild_keep_the_source(engine: QueueEngine, aredis: aioredis.Redis,
                                                        tmp_path: Path) -> None:
    await _clinic(engine)
    ids = {src: (await engine.issue("gp", source=src))["id"] for src in SOURCES}
    store = Store(tmp_path / "qtraq.db")
    await store.open()
    try:
        await Persister(aredis, store).drain()
        rows = await store.fetchall("SELECT id, source FROM tickets ORDER BY id")
        assert {r["id"]: r["source"] for r in rows} == {tid: src for src, tid in ids.items()}
        await aredis.flushdb()
        await rebuild(store, aredis)
    finally:
        await store.close()
    for src, tid in ids.items():
        assert (await engine.ticket(tid))["source"] == src


async def test_an_older_database_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "qtraq.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_TICKETS)
        db.execute("INSERT INTO tickets (id, clinic, queue, label, status, score, day)"
                   " VALUES (7, 'c1', 'gp', 'A-001', 'done', '1', '20260301')")
    db.close()
    for _ in range(2):  # a second start finds the column there and changes nothing
        store = Store(path)
        await store.open()
        try:
            assert await store.fetchval("SELECT source FROM tickets WHERE id = 7") == "reception"
        finally:
            await store.close()


def test_every_issue_path_sets_its_source(app_server: LiveServer) -> None:  # noqa: F811
    app_server.clinic("c1", ("gp",), self_checkin=True)
    desk = app_server.staff("reception").post("/queues/gp/tickets", json={"name": "Asha"})
    own = app_server.client().post("/public/queues/gp/join", json={"name": "Ravi"})
    assert desk.status_code == own.status_code == 201, (desk.text, own.text)
    assert (desk.json()["ticket"]["source"], own.json()["ticket"]["source"]) == ("reception", "self")
    snapshot = app_server.staff("reception").get("/queues/gp").json()
    assert [t["source"] for t in snapshot["waiting"]] == ["reception", "self"]


def test_the_stats_chart_draws_tickets_by_source(app_server: LiveServer) -> None:  # noqa: F811
    app_server.clinic("c1", ("gp",))

    async def six_shared() -> int:
        for _ in range(6):
            await app_server.engine.issue("gp", source=TicketSource.ABDM)
        return await Persister(app_server.app.state.redis, app_server.app.state.store).drain()

    assert app_server.run(six_shared()) > 0
    admin = app_server.staff("admin")
    svg = admin.get(f"{app_server.url}/admin/charts/c1/tickets-by-source.svg?lang=hi")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert ">ABHA</text>" in svg.text and "ABHA: 6 टिकट</title>" in svg.text
    assert svg.text.count("<rect x=") == len(SOURCES)
