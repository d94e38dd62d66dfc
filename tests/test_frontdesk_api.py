"""The front desk's API over real HTTP: phone numbers as people type them (stored E.164, read
in the clinic's region), calling a chosen ticket out of order, closing a counter, the day's
appointments, and the demo's simulator keeping off the counter of the reception URL the demo
prints."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest

from qtraq_live import phones
from qtraq_live.errors import Invalid
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record import audit
from qtraq_live.record.store import Store
from qtraq_live.runtime import demo
from tests.support_accounts import Clinic, add_patient, clinic, portal, register  # noqa: F401
from tests.support_http import LiveServer, app_server, error_of  # noqa: F401

TYPED = ["98765 43210", "09876543210", "+91 98765-43210", "+919876543210", "(+91) 98765.43210"]


@pytest.mark.parametrize("typed", TYPED)
def test_an_indian_number_as_people_type_it_is_one_e164(typed: str) -> None:
    assert phones.to_e164(typed, "IN") == "+919876543210"


@pytest.mark.parametrize("typed", ["98765", "00000 00000", "+0123456789", "98765 43210 99", "abc", "9876543210x",
                                   "+91 98765 43210; DROP", ""])
def test_a_wrong_number_says_what_a_right_one_looks_like(typed: str) -> None:
    with pytest.raises(Invalid) as caught:
        phones.to_e164(typed, "IN")
    assert caught.value.field == "mobile"
    assert "+91 " in caught.value.message and "such as" in caught.value.message


def test_the_region_decides_how_a_local_number_reads() -> None:
    assert phones.to_e164("984-1234567", "NP") == "+9779841234567"
    assert phones.to_e164("+91 98765 43210", "NP") == "+919876543210"  # a + number is read as written
    with pytest.raises(Invalid):
        phones.check_region("in")
    with pytest.raises(Invalid):
        phones.check_region("XX")


@pytest.fixture
def desk(app_server: LiveServer) -> httpx.Client:
    app_server.clinic("c1", ("gp", "eye"))
    return app_server.staff("reception")


def _contact_mobile(server: LiveServer, ticket_id: int) -> str | None:
    with server.db() as db:
        row = db.execute("SELECT mobile FROM ticket_contacts WHERE ticket_id = ?", (ticket_id,)).fetchone()
    return None if row is None else str(row["mobile"])


@pytest.mark.parametrize("typed", TYPED[:3])
def test_walk_in_and_self_check_in_store_e164(app_server: LiveServer, desk: httpx.Client, typed: str) -> None:
    r = desk.post("/queues/gp/tickets", json={"mobile": typed, "notify": True})
    assert r.status_code == 201, r.text
    assert _contact_mobile(app_server, r.json()["ticket"]["id"]) == "+919876543210"
    admin = app_server.staff("admin")
    assert admin.patch("/queues/eye", json={"self_checkin": True}).status_code == 200
    r = app_server.client().post("/public/queues/eye/join", json={"mobile": typed})
    assert r.status_code == 201, r.text
    assert _contact_mobile(app_server, r.json()["ticket"]["id"]) == "+919876543210"


def test_a_wrong_number_writes_nothing_and_shows_an_example(app_server: LiveServer, desk: httpx.Client) -> None:
    before = app_server.run(app_server.engine.version("c1"))
    r = desk.post("/queues/gp/tickets", json={"mobile": "98765 432"})
    assert error_of(r) == (422, "invalid_field")
    assert r.json()["error"]["message"].startswith("mobile: must be a phone number such as ")
    assert app_server.run(app_server.engine.version("c1")) == before
    with app_server.db() as db:
        assert db.execute("SELECT count(*) FROM ticket_contacts").fetchone()[0] == 0


def test_a_clinic_region_is_kept_and_used(app_server: LiveServer) -> None:
    admin = app_server.staff("admin")
    r = admin.post("/clinics", json={"id": "ktm", "name": "Kathmandu Clinic", "timezone": "Asia/Kathmandu",
                                     "region": "NP"})
    assert r.status_code == 201, r.text
    assert (r.json()["region"], r.json()["mask_names"]) == ("NP", True)  # masking is on unless turned off
    assert admin.post("/clinics/ktm/queues", json={"id": "opd", "name": "OPD", "prefix": "O"}).status_code == 201
    t = admin.post("/queues/opd/tickets", json={"mobile": "984-1234567"})
    assert t.status_code == 201, t.text
    assert _contact_mobile(app_server, t.json()["ticket"]["id"]) == "+9779841234567"
    assert error_of(admin.patch("/clinics/ktm", json={"region": "ZZ"})) == (422, "invalid_field")
    assert admin.patch("/clinics/ktm", json={"region": "IN"}).json()["region"] == "IN"
    assert admin.get("/clinics/ktm").json()["region"] == "IN"


def test_an_account_registers_and_signs_in_with_a_typed_number(portal: LiveServer) -> None:
    p = register(portal, mobile="098765 12121")
    assert p.client.get("/me").json()["mobile"] == "+919876512121"
    for typed in ("98765 12121", "+91 98765-12121"):
        r = portal.client().post("/auth/account-login", json={"mobile": typed, "password": "a long unusual passphrase"})
        assert r.status_code == 200, r.text
    r = portal.client().post("/auth/account-login", json={"mobile": "98765", "password": "x"})
    assert error_of(r) == (422, "invalid_field") and "such as" in r.json()["error"]["message"]


# -- calling a chosen ticket -------------------------------------------------------------------

def _issue(c: httpx.Client, queue: str = "gp") -> dict[str, Any]:
    r = c.post(f"/queues/{queue}/tickets", json={})
    assert r.status_code == 201, r.text
    return dict(r.json()["ticket"])


def test_call_out_of_order_ends_the_counters_previous_call(app_server: LiveServer, desk: httpx.Client) -> None:
    a, b, c = _issue(desk), _issue(desk), _issue(desk)
    first = desk.post("/queues/gp/next", json={"counter": "3"}).json()["called"]
    assert first["id"] == a["id"]
    r = desk.post(f"/tickets/{c['id']}/call", json={"counter": "3"})
    assert r.status_code == 200, r.text
    assert (r.json()["ticket"]["status"], r.json()["ticket"]["counter"]) == ("called", "3")
    assert desk.get(f"/tickets/{a['id']}").json()["ticket"]["status"] == "done"
    snap = desk.get("/queues/gp").json()
    assert [t["id"] for t in snap["waiting"]] == [b["id"]]
    assert [t["id"] for t in snap["now_serving"]] == [c["id"]]


def test_call_brings_back_a_skipped_or_no_show_ticket(desk: httpx.Client) -> None:
    a, b = _issue(desk), _issue(desk)
    desk.post("/queues/gp/next", json={"counter": "1"})
    assert desk.post(f"/tickets/{a['id']}/skip").json()["ticket"]["status"] == "skipped"
    desk.post("/queues/gp/next", json={"counter": "1"})
    assert desk.post(f"/tickets/{b['id']}/no-show").json()["ticket"]["status"] == "no_show"
    for t in (a, b):
        r = desk.post(f"/tickets/{t['id']}/call", json={"counter": "2"})
        assert r.json()["ticket"]["status"] == "called", r.text
    done = desk.post(f"/tickets/{b['id']}/done").json()["ticket"]
    assert error_of(desk.post(f"/tickets/{done['id']}/call", json={})) == (409, "illegal_transition")


def test_call_refuses_bad_input_and_changes_nothing(app_server: LiveServer, desk: httpx.Client) -> None:
    t = _issue(desk)
    before = app_server.run(app_server.engine.version("c1"))
    assert error_of(desk.post(f"/tickets/{t['id']}/call", json={"counter": "x" * 33})) == (422, "invalid_field")
    assert error_of(desk.post(f"/tickets/{t['id']}/call", json={"desk": "1"})) == (422, "unknown_field")
    assert error_of(desk.post("/tickets/999999/call", json={})) == (404, "not_found")
    assert error_of(desk.post(f"/tickets/{t['id']}/call", content=b"{", headers={"Content-Type": "application/json"}))[0] == 400
    desk.post("/queues/gp/pause")
    assert error_of(desk.post(f"/tickets/{t['id']}/call", json={})) == (409, "queue_paused")
    assert app_server.run(app_server.engine.version("c1")) == before + 1  # the pause only


def test_a_retried_call_with_its_key_calls_once(app_server: LiveServer, desk: httpx.Client) -> None:
    a, b = _issue(desk), _issue(desk)
    desk.post("/queues/gp/next", json={"counter": "1"})
    headers = {"Idempotency-Key": "press-1"}

    def press(_: int) -> dict[str, Any]:
        return dict(desk.post(f"/tickets/{b['id']}/call", json={"counter": "1"}, headers=headers).json())

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(press, range(4)))
    assert {x["ticket"]["id"] for x in answers} == {b["id"]}
    assert desk.get(f"/tickets/{a['id']}").json()["ticket"]["status"] == "done"
    events = app_server.run(app_server.engine.events_since("c1", 0)) or []
    assert [e["type"] for e in events].count("called") == 2  # the next press and one call


def test_a_doctor_calls_only_on_their_queues(app_server: LiveServer, desk: httpx.Client) -> None:
    gp, eye = _issue(desk, "gp"), _issue(desk, "eye")
    doctor = app_server.staff("doctor", ("gp",))
    assert doctor.post(f"/tickets/{gp['id']}/call", json={"counter": "Room 2"}).status_code == 200
    assert error_of(doctor.post(f"/tickets/{eye['id']}/call", json={})) == (403, "forbidden")
    assert error_of(app_server.client().post(f"/tickets/{eye['id']}/call", json={}))[0] == 401


# -- closing a counter ----------------------------------------------------------------------------

def _close(c: httpx.Client, counter: str, queue: str = "gp") -> httpx.Response:
    return c.post(f"/queues/{queue}/counters/{quote(counter, safe='')}/close")


def _open_counters(server: LiveServer) -> int:
    clinic = server.run(server.engine.get_clinic("c1")) or {}
    return int(next(q for q in clinic["queues"] if q["id"] == "gp")["counters_open"])


def _audited(server: LiveServer, action: str) -> list[str]:
    server.run(audit.copy(server.app.state.redis, server.app.state.store))  # the duties process's job
    entries = server.staff("admin").get("/audit", params={"action": action}).json()["entries"]
    return [e["target"] for e in entries]


def test_closing_a_counter_ends_its_call_and_leaves_the_open_counters(app_server: LiveServer,
                                                                     desk: httpx.Client) -> None:
    a, b, c = _issue(desk), _issue(desk), _issue(desk)
    desk.post("/queues/gp/next", json={"counter": "Room 2"})
    desk.post("/queues/gp/next", json={"counter": "3"})
    assert _open_counters(app_server) == 2
    r = _close(desk, "Room 2")
    assert r.status_code == 200, r.text
    assert r.json()["closed"] is True
    assert (r.json()["done"]["id"], r.json()["done"]["status"]) == (a["id"], "done")
    snap = desk.get("/queues/gp").json()
    assert [t["id"] for t in snap["now_serving"]] == [b["id"]]  # counter 3 still serves
    assert [t["id"] for t in snap["waiting"]] == [c["id"]]  # nobody else was called
    assert _open_counters(app_server) == 1
    events = app_server.run(app_server.engine.events_since("c1", 0)) or []
    closing = events[-1]
    assert (closing["type"], closing["counter"], [t["id"] for t in closing["tickets"]]) == (
        "counter_closed", "Room 2", [a["id"]])
    # Closing it again changes nothing: same answer shape, no version, no second audit entry.
    version = app_server.run(app_server.engine.version("c1"))
    again = _close(desk, "Room 2")
    assert (again.status_code, again.json()) == (200, {"closed": False, "done": None})
    assert app_server.run(app_server.engine.version("c1")) == version
    assert _audited(app_server, "queue.close_counter") == ["queue:gp"]
    # An idle counter (pressed Next, holds nobody) closes too: it only stops counting as open.
    desk.post(f"/tickets/{b['id']}/done")
    assert _close(desk, "3").json() == {"closed": True, "done": None}
    assert app_server.run(app_server.engine.version("c1")) == version + 2
    # The next press opens it again.
    assert desk.post("/queues/gp/next", json={"counter": "Room 2"}).json()["called"]["id"] == c["id"]


def test_closing_a_counter_checks_who_and_what(app_server: LiveServer, desk: httpx.Client) -> None:
    _issue(desk, "gp")
    _issue(desk, "eye")
    desk.post("/queues/gp/next", json={"counter": "a/b"})  # any text names a counter, even with a slash
    desk.post("/queues/eye/next", json={"counter": "1"})
    before = app_server.run(app_server.engine.version("c1"))
    doctor = app_server.staff("doctor", ("gp",))
    assert error_of(_close(doctor, "1", "eye")) == (403, "forbidden")
    assert error_of(_close(app_server.client(), "1", "eye"))[0] == 401
    assert error_of(_close(desk, "x" * 33)) == (422, "invalid_field")
    assert error_of(desk.post("/queues/gp/counters/1/close", json={"counter": "1"})) == (422, "unknown_field")
    assert error_of(_close(desk, "1", "nowhere")) == (404, "not_found")
    assert app_server.run(app_server.engine.version("c1")) == before  # nothing refused wrote anything
    r = _close(doctor, "a/b")
    assert r.status_code == 200 and r.json()["done"]["counter"] == "a/b", r.text
    assert desk.get("/queues/gp").json()["now_serving"] == []


# -- the day's appointments ---------------------------------------------------------------------

def test_todays_appointments_search_and_one_click_check_in(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal, mobile="+919812300001")
    with portal.db() as db:  # a guardian's contact is verified (the code itself is tested elsewhere)
        db.execute("UPDATE accounts SET mobile_verified = 1 WHERE id = ?", (p.id,))
    kid = add_patient(p, name="Kavya Iyer", relation="child", age=6, consent_confirmed=True, guardian=True,
                      guardian_method="document", guardian_document="digilocker:TEST-1")
    me = add_patient(p, name="Ravi Iyer")
    for patient, slot in ((kid["id"], clinic.later_slot()), (me["id"], None)):
        body = {"patient": patient, "queue": clinic.slotted if slot else clinic.by_date, "date": clinic.today(),
                **({"slot": slot} if slot else {})}
        assert p.post("/me/appointments", json=body).status_code == 201
    desk = portal.staff("reception")
    day = desk.get(f"/clinics/{clinic.id}/appointments").json()
    assert day["date"] == clinic.today()
    assert [(a["patient"]["name"], a["slot"], a["status"]) for a in day["appointments"]] == [
        ("Kavya Iyer", clinic.later_slot(), "booked"), ("Ravi Iyer", None, "booked")]
    assert [a["patient"]["name"] for a in desk.get(f"/clinics/{clinic.id}/appointments",
                                                   params={"q": "kavya"}).json()["appointments"]] == ["Kavya Iyer"]
    assert len(desk.get(f"/clinics/{clinic.id}/appointments", params={"q": "12300"}).json()["appointments"]) == 2
    assert desk.get(f"/clinics/{clinic.id}/appointments", params={"q": "%"}).json()["appointments"] == []
    assert desk.get(f"/clinics/{clinic.id}/appointments",
                    params={"date": clinic.tomorrow()}).json()["appointments"] == []
    first = day["appointments"][0]
    r = desk.post(f"/appointments/{first['id']}/check-in")
    assert r.status_code == 201, r.text
    after = desk.get(f"/clinics/{clinic.id}/appointments").json()["appointments"][0]
    assert (after["status"], after["ticket_id"]) == ("checked_in", r.json()["ticket"]["id"])


def test_the_day_list_is_for_reception_and_checks_its_input(portal: LiveServer, clinic: Clinic) -> None:
    desk = portal.staff("reception")
    assert error_of(desk.get(f"/clinics/{clinic.id}/appointments", params={"date": "2026-13-01"})) == (
        422, "invalid_field")
    assert error_of(desk.get(f"/clinics/{clinic.id}/appointments", params={"q": "x" * 81})) == (422, "invalid_field")
    assert error_of(desk.get("/clinics/nope/appointments")) == (404, "not_found")
    doctor = portal.staff("doctor", (clinic.slotted,))
    assert error_of(doctor.get(f"/clinics/{clinic.id}/appointments")) == (403, "forbidden")
    assert error_of(portal.client().get(f"/clinics/{clinic.id}/appointments"))[0] == 401


def test_csv_import_reads_typed_numbers(portal: LiveServer, clinic: Clinic, tmp_path: Path) -> None:
    csv_file = tmp_path / "day.csv"
    csv_file.write_text("name,mobile,email,queue,date,slot\n"
                        f"Kiran Rao,098000 00001,,{clinic.by_date},{clinic.tomorrow()},\n"
                        f"Lata,98000,,{clinic.by_date},{clinic.tomorrow()},\n")
    env = {**os.environ, "QTRAQ_DATA_DIR": str(portal.settings.data_dir), "QTRAQ_REDIS_URL": portal.settings.redis_url}
    run = subprocess.run([sys.executable, "-m", "qtraq_live.cli", "import", "appointments", str(csv_file)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 1 and "line 3: mobile: must be a phone number such as" in run.stderr, run.stderr
    csv_file.write_text("name,mobile,email,queue,date,slot\n"
                        f"Kiran Rao,098000 00001,,{clinic.by_date},{clinic.tomorrow()},\n")
    run = subprocess.run([sys.executable, "-m", "qtraq_live.cli", "import", "appointments", str(csv_file)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(portal.settings.data_dir / "qtraq.db") as db:
        assert db.execute("SELECT mobile FROM appointment_contacts").fetchone()[0] == "+919800000001"


async def test_the_simulator_never_calls_at_the_printed_reception_counter(engine: QueueEngine,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert demo.RECEPTION_COUNTER not in demo.SIM_COUNTERS
    await demo.ensure_clinic(engine, demo.CLINIC)
    monkeypatch.setattr(demo, "ARRIVAL_EVERY_S", 0.01)
    monkeypatch.setattr(demo, "CALL_EVERY_S", 0.02)
    stop = asyncio.Event()
    task = asyncio.create_task(demo.simulate(engine, stop, random.Random(7)))
    called: set[str] = set()
    for _ in range(200):
        await asyncio.sleep(0.01)
        for q in ("gp", "lab"):
            called |= {t["counter"] for t in (await engine.queue_snapshot(q))["now_serving"]}
        if len(called) >= 2:
            break
    stop.set()
    await task
    assert called and called <= set(demo.SIM_COUNTERS), called


def test_served_per_day_counts_days_in_the_clinic_timezone_today_included(portal: LiveServer) -> None:
    """A clinic whose date differs from UTC's right now: the chart ends on its today."""
    now = datetime.now(timezone.utc)
    tz = "Etc/GMT-14" if now.hour >= 12 else "Etc/GMT+12"  # UTC+14 or UTC-12: another date than UTC's
    today = datetime.now(ZoneInfo(tz)).date()
    assert today != now.date()
    stamp = int(now.timestamp() * 1000) - 60_000
    with portal.db() as db:
        db.execute("INSERT INTO clinics (id, name, timezone) VALUES ('far', 'Far Clinic', ?)", (tz,))
        for i in range(6):
            db.execute("INSERT INTO tickets (id, clinic, queue, label, status, score, day, created_at, called_at,"
                       " done_at) VALUES (?, 'far', 'q', ?, 'done', '0', ?, ?, ?, ?)",
                       (900 + i, f"A-{i:03d}", today.strftime("%Y%m%d"), stamp - 600_000, stamp - 300_000, stamp))
    svg = portal.staff("admin").get(f"{portal.url}/admin/charts/far/served-per-day.svg").text
    assert f"<title>{today.strftime('%m-%d')}: 6 patients</title>" in svg
    labels = re.findall(r"<title>(\d\d-\d\d): ", svg)
    assert labels[-1] == today.strftime("%m-%d") and len(labels) == 14


async def test_a_record_made_before_regions_gains_the_column(tmp_path: Path) -> None:
    """A clinics table without ``region`` (made before it existed) gets it at open, default IN."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE clinics (id TEXT PRIMARY KEY, name TEXT NOT NULL, timezone TEXT NOT NULL,"
                   " mask_names INTEGER NOT NULL DEFAULT 0, lang TEXT NOT NULL DEFAULT 'en', created_at INTEGER,"
                   " updated_version INTEGER NOT NULL DEFAULT 0)")
        db.execute("INSERT INTO clinics (id, name, timezone) VALUES ('old', 'Old Clinic', 'Asia/Kolkata')")
    store = Store(path)
    await store.open()
    try:
        assert await store.fetchval("SELECT region FROM clinics WHERE id = 'old'") == "IN"
    finally:
        await store.close()
    await store.open()  # and again: nothing to add the second time
    await store.close()
