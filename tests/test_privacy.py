"""The rights over one's data: export holds everything entered; erasure leaves none of the
account's names, emails or phone numbers in the SQLite file or anywhere in Redis (pending
notices included); the retention purge removes old walk-in contacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from qtraq_live.accounts.privacy import purge
from qtraq_live.config import Settings
from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record.persister import Persister
from qtraq_live.record.store import Store
from qtraq_live.runtime.duties import Context
from tests.conftest import TIMEOUT_FACTOR
from tests.support_accounts import (PASSWORD, Patient, add_patient, code_in_ledger, live_portal,  # noqa: F401
                                    codes_sent, off_loop, portal, redis_dump, register, verify)
from tests.support_http import LiveServer, error_of
from tests.support_notify import await_until, notifier, notify_env, sink, smtp  # noqa: F401

DAY_MS = 86_400_000


def test_export_holds_everything_entered(portal: LiveServer, redis_url: str) -> None:
    entered = {"name": "Farah Nadeem", "gender": "female", "date_of_birth": "1979-08-09", "state": "Punjab",
               "city": "Amritsar", "lang": "hi", "consent": {"notifications": True, "analytics": True,
                                                             "marketing": True}}
    p = register(portal, **entered)
    assert verify(p, "mobile", codes_sent(redis_url, p.mobile)[0]).status_code == 200  # a guardian's verified contact
    me = add_patient(p, name="Farah Nadeem", relation="self", date_of_birth="1979-08-09", gender="female",
                     blood_group="B-")
    kid = add_patient(p, name="Zoya Nadeem", relation="child", age=9, gender="female", blood_group="O+",
                      consent_confirmed=True, guardian=True)
    p.client.put("/me/consent", json={"notifications": False, "analytics": True, "marketing": False})
    booked = p.post("/me/appointments", json={"patient": kid["id"], "queue": "gp", "date": time.strftime(
        "%Y-%m-%d", time.gmtime(time.time() + DAY_MS / 1000))}).json()
    r = p.get("/me/export")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    data = r.json()
    account = data["account"]
    assert {k: account[k] for k in ("name", "gender", "date_of_birth", "state", "city", "lang", "email", "mobile")} == {
        **{k: v for k, v in entered.items() if k != "consent"}, "email": p.email, "mobile": p.mobile}
    assert "hash" in account["password"] and PASSWORD not in r.text
    assert [h["marketing"] for h in data["consent"]["history"]] == [True, False]
    assert data["consent"]["current"] == {"notifications": False, "analytics": True, "marketing": False}
    assert data["sessions"][0]["os"] == "Android 14" and data["sessions"][0]["ip"] == "127.0.0.1"
    patients = {x["id"]: x for x in data["patients"]}
    assert patients[me["id"]]["blood_group"] == "B-" and patients[me["id"]]["date_of_birth"] == "1979-08-09"
    child = patients[kid["id"]]
    assert (child["name"], child["age"], child["gender"], child["blood_group"], child["relation"]) == (
        "Zoya Nadeem", 9, "female", "O+", "child")
    assert child["consent_at"] and child["guardian_at"] and child["age_recorded_on"]
    assert [(a["id"], a["patient"], a["queue"], a["status"]) for a in data["appointments"]] == [
        (booked["id"], kid["id"], "gp", "booked")]
    assert {c["channel"] for c in data["verification_codes"]} == {"email", "mobile"}
    assert error_of(portal.client().get("/me/export")) == (401, "not_authenticated")


def _needles(p: Patient, *names: str) -> list[bytes]:
    digits = p.mobile.lstrip("+")
    return [n.encode() for n in (*names, p.email, p.mobile, digits)]


async def test_erasure_leaves_nothing_in_sqlite_or_redis(live_portal: LiveServer, notifier: Context,
                                                          aredis: aioredis.Redis, redis_url: str) -> None:
    p = await off_loop(register, live_portal, name="Quillon Vantablack",
                       consent={"notifications": True, "analytics": False, "marketing": False})
    code = await code_in_ledger(aredis, p.id, "email")
    assert (await off_loop(p.post, "/accounts/verify", {"channel": "email", "code": code})).status_code == 200
    await off_loop(add_patient, p, name="Quillon Vantablack")
    spouse = await off_loop(add_patient, p, name="Ysolde Vantablack", relation="spouse", age=41,
                            consent_confirmed=True, blood_group="A+")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    appt = (await off_loop(p.post, "/me/appointments", {"patient": spouse["id"], "queue": "gp", "date": today})).json()
    desk = await off_loop(live_portal.staff, "reception")
    ticket = (await off_loop(desk.post, f"/appointments/{appt['id']}/check-in")).json()["ticket"]
    needles = _needles(p, "Quillon Vantablack", "Ysolde Vantablack", "Vantablack")
    # the notifier has made the account's notices (welcome, codes, "issued"): recipients are in Redis now

    async def issued_notice() -> list[str]:
        return [k async for k in aredis.scan_iter(match=f"qt:notice:t{ticket['id']}:issued:*")]

    await await_until(issued_notice, "the ticket's issued notice")
    db_file = Path(live_portal.settings.data_dir) / "qtraq.db"
    files = (db_file, Path(f"{db_file}-wal"))
    assert _any_needle(redis_dump(redis_url), needles)  # the searches below can see them
    assert any(_any_needle(f.read_bytes(), needles) for f in files if f.exists())

    assert (await off_loop(p.client.delete, "/me")).status_code == 204
    assert error_of(await off_loop(p.get, "/me")) == (401, "not_authenticated")
    login = await off_loop(p.post, "/auth/account-login", {"email": p.email, "password": PASSWORD})
    assert error_of(login)[0] == 401
    live = await notifier.engine.ticket(ticket["id"])
    assert live is not None and live["status"] == "cancelled"
    dump = redis_dump(redis_url)
    assert not _any_needle(dump, needles), [dump[max(0, dump.find(n) - 300):dump.find(n) + 50]
                                            for n in needles if n in dump]
    for path in files:
        if path.exists():
            assert not _any_needle(path.read_bytes(), needles), path
    with live_portal.db() as db:  # the appointment stays, de-identified, for statistics
        row = db.execute("SELECT account_id, patient_id, status FROM appointments WHERE id = ?",
                         (appt["id"],)).fetchone()
        assert tuple(row) == (None, None, "checked_in")
    await _aof_rewritten(aredis)
    aof = Path(await _config(aredis, "dir")) / await _config(aredis, "appendfilename")
    assert not _any_needle(aof.read_bytes(), needles)


def _any_needle(blob: bytes, needles: list[bytes]) -> bool:
    return any(n in blob for n in needles)


async def _config(client: aioredis.Redis, name: str) -> str:
    return str((await client.config_get(name))[name])


async def _aof_rewritten(client: aioredis.Redis) -> None:
    async def done() -> bool:
        info = await client.info("persistence")
        return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

    await await_until(done, "the append-only file rewrite")


def test_purge_applies_the_retention_policy(portal: LiveServer) -> None:
    now = int(time.time() * 1000)
    old, recent = now - 31 * DAY_MS, now - 2 * DAY_MS
    p = register(portal)
    with portal.db() as db:
        db.executemany("INSERT INTO ticket_contacts (ticket_id, mobile, email, created_at) VALUES (?,?,?,?)",
                       [(1, "+911111111111", None, old), (2, None, "keep@mail.example", recent)])
        db.executemany("INSERT INTO tickets (id, clinic, queue, label, status, score, name, day, created_at)"
                       " VALUES (?, 'c1', 'gp', 'A-001', 'done', '0', ?, '20260101', ?)",
                       [(1, "Old Walkin", old), (2, "New Walkin", recent)])
        db.execute("INSERT INTO account_sessions (account_id, created_at, ip, os, browser) VALUES (?,?,?,?,?)",
                   (p.id, now - 181 * DAY_MS, "10.0.0.9", "Linux", "Firefox 1"))
        db.execute("INSERT INTO appointments (id, clinic, queue, date, at_ms, no_show_at, status, created_at,"
                   " updated_at) VALUES (7, 'c1', 'gp', '2020-01-01', ?, ?, 'no_show', ?, ?)", (old, old, old, old))
        db.execute("INSERT INTO appointment_contacts VALUES (7, 'Imported Person', '+912222222222', NULL, ?)", (old,))
    env = {**os.environ, "QTRAQ_DATA_DIR": str(portal.settings.data_dir), "QTRAQ_REDIS_URL": portal.settings.redis_url,
           "QTRAQ_LOG_LEVEL": "warning"}
    run = subprocess.run([sys.executable, "-m", "qtraq_live.cli", "purge"], env=env, capture_output=True, text=True,
                         timeout=60 * TIMEOUT_FACTOR, check=False)
    assert run.returncode == 0, run.stderr
    for removed in ("walkin_contacts 1", "walkin_names 1", "imported_contacts 1", "account_sessions 1"):
        assert removed in run.stdout, run.stdout
    with portal.db() as db:
        assert [r[0] for r in db.execute("SELECT ticket_id FROM ticket_contacts")] == [2]
        assert dict(db.execute("SELECT id, name FROM tickets").fetchall()) == {1: None, 2: "New Walkin"}
    assert [s["ip"] for s in p.get("/me/sessions").json()["sessions"]] == ["127.0.0.1"]


async def test_purge_forgets_old_walkin_names_in_redis_too(engine: QueueEngine, aredis: aioredis.Redis,
                                                           settings: Settings, tmp_path: Path) -> None:
    """After the retention period a walk-in's name is neither in a live hash nor in the
    event stream (whose ticket states carry it)."""
    store = Store(tmp_path / "purge.db")
    await store.open()
    now = time.time()
    engine.clock = lambda: now - 31 * 86400
    await engine.create_clinic("r1", "Retention clinic")
    await engine.create_queue("r1", "rq", "Q", "R")
    old = await engine.issue("rq", name="Ancient Walkin")
    engine.clock = lambda: now
    recent = await engine.issue("rq", name="Recent Walkin")
    await Persister(aredis, store).drain()
    removed = await purge(store, aredis, settings, int(now * 1000))
    assert removed["walkin_names"] == 1 and removed["stream_events"] == 3
    assert await aredis.hget(keys.ticket(old["id"]), "name") == ""
    assert await aredis.hget(keys.ticket(recent["id"]), "name") == "Recent Walkin"
    stream = json.dumps(await aredis.xrange(keys.events("r1")))
    assert "Ancient" not in stream and "Recent Walkin" in stream
    assert await engine.events_since("r1", 1) is None  # resuming from before the cut: a snapshot
    await store.close()
