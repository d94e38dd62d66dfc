"""Appointments over real HTTP: slot settings, booking within capacity (also under concurrent
bookings), cancelling, check-in by reception or on site, the queue order policy, no-shows,
reminders and the CSV import."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from qtraq_live.accounts import appointments, duty
from qtraq_live.accounts.notices import recipients_for_ticket
from qtraq_live.runtime.duties import Context
from tests.conftest import TIMEOUT_FACTOR
from tests.support_accounts import (Clinic, Patient, add_patient, clinic, codes_sent, notice_requests,  # noqa: F401
                                    portal, register)
from tests.support_http import LiveServer, error_of


def _book(p: Patient, patient: int, queue: str, date: str, slot: str | None = None) -> dict[str, Any]:
    r = p.post("/me/appointments", json={"patient": patient, "queue": queue, "date": date,
                                         **({"slot": slot} if slot else {})})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_slot_settings_are_admin_only_and_checked(portal: LiveServer, clinic: Clinic) -> None:
    desk = portal.staff("reception")
    body = {"slot_minutes": 30, "capacity": 4, "opens": "09:00", "closes": "12:00", "order_policy": "arrival"}
    assert error_of(desk.put(f"/queues/{clinic.slotted}/slots", json=body)) == (403, "forbidden")
    admin = portal.staff("admin")
    for field, value in [("slot_minutes", 2), ("capacity", 0), ("opens", "9:00"), ("closes", "24:00"),
                         ("order_policy", "random"), ("grace_minutes", -1), ("colour", "red")]:
        r = admin.put(f"/queues/{clinic.slotted}/slots", json={**body, field: value})
        assert r.status_code == 422 and field in r.json()["error"]["message"], (field, r.text)
    r = admin.put(f"/queues/{clinic.slotted}/slots", json={**body, "closes": "09:15"})
    assert error_of(r) == (422, "invalid_field") and "closes" in r.json()["error"]["message"]
    assert error_of(admin.put("/queues/nope/slots", json=body)) == (404, "not_found")
    assert admin.put(f"/queues/{clinic.slotted}/slots", json=body).json()["order_policy"] == "arrival"
    day = portal.client().get(f"/queues/{clinic.slotted}/slots", params={"date": clinic.tomorrow()}).json()
    assert [s["slot"] for s in day["slots"]] == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    assert all(s["free"] == 4 and not s["past"] for s in day["slots"])
    by_date = portal.client().get(f"/queues/{clinic.by_date}/slots", params={"date": clinic.today()}).json()
    assert by_date["slots"] is None
    assert admin.delete(f"/queues/{clinic.slotted}/slots").status_code == 204


def test_book_list_and_cancel(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    me = add_patient(p)
    appt = _book(p, me["id"], clinic.slotted, clinic.tomorrow(), "10:00")
    assert {k: appt[k] for k in ("patient", "queue", "date", "slot", "status")} == {
        "patient": me["id"], "queue": clinic.slotted, "date": clinic.tomorrow(), "slot": "10:00", "status": "booked"}
    by_date = _book(p, me["id"], clinic.by_date, clinic.today())
    assert by_date["slot"] is None
    listed = p.get("/me/appointments").json()["appointments"]
    assert {a["id"] for a in listed} == {appt["id"], by_date["id"]}
    free = portal.client().get(f"/queues/{clinic.slotted}/slots", params={"date": clinic.tomorrow()}).json()
    assert [s["free"] for s in free["slots"] if s["slot"] == "10:00"] == [1]
    again = p.post("/me/appointments", json={"patient": me["id"], "queue": clinic.slotted,
                                             "date": clinic.tomorrow(), "slot": "11:00"})
    assert error_of(again) == (409, "already_booked")
    assert p.client.delete(f"/me/appointments/{appt['id']}").json()["status"] == "cancelled"
    assert error_of(p.client.delete(f"/me/appointments/{appt['id']}")) == (409, "not_booked")
    other = register(portal)
    assert error_of(other.client.delete(f"/me/appointments/{by_date['id']}")) == (404, "not_found")


@pytest.mark.parametrize(("field", "value"), [
    ("patient", 0), ("patient", "1"), ("patient", 999), ("queue", "Bad Queue"), ("queue", "nope"),
    ("date", "2026-02-30"), ("date", "tomorrow"), ("date", "2000-01-01"), ("date", "2999-01-01"),
    ("slot", "25:00"), ("slot", "10:15"), ("slot", 10), ("room", "4"),
])
def test_every_bad_booking_field_is_named(portal: LiveServer, clinic: Clinic, field: str, value: object) -> None:
    p = register(portal)
    me = add_patient(p)
    body = {"patient": me["id"], "queue": clinic.slotted, "date": clinic.tomorrow(), "slot": "10:00", field: value}
    r = p.post("/me/appointments", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_slot_rules(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    me = add_patient(p)
    base = {"patient": me["id"], "date": clinic.tomorrow()}
    r = p.post("/me/appointments", json={**base, "queue": clinic.slotted})
    assert error_of(r) == (422, "missing_field") and "slot" in r.json()["error"]["message"]
    r = p.post("/me/appointments", json={**base, "queue": clinic.by_date, "slot": "10:00"})
    assert error_of(r)[0] == 422 and "slot" in r.json()["error"]["message"]
    past = f"{int(clinic.current_slot()[:2]) - 2:02d}:00"
    r = p.post("/me/appointments", json={**base, "date": clinic.today(), "queue": clinic.slotted, "slot": past})
    assert error_of(r)[0] == 422 and "passed" in r.json()["error"]["message"]


def test_a_full_slot_refuses_more(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    ids = [add_patient(p, name=f"P {i}", relation="other", age=40, consent_confirmed=True)["id"] for i in range(3)]
    for pid in ids[:2]:
        _book(p, pid, clinic.slotted, clinic.tomorrow(), "09:00")
    r = p.post("/me/appointments", json={"patient": ids[2], "queue": clinic.slotted, "date": clinic.tomorrow(),
                                         "slot": "09:00"})
    assert error_of(r) == (409, "slot_full")


def test_concurrent_bookings_never_exceed_capacity(portal: LiveServer, clinic: Clinic) -> None:
    accounts = [register(portal) for _ in range(4)]
    patients = [(a, add_patient(a, name=f"P {i}.{j}", relation="other", age=30, consent_confirmed=True)["id"])
                for i, a in enumerate(accounts) for j in range(3)]

    def attempt(pair: tuple[Patient, int]) -> int:
        a, pid = pair
        return a.post("/me/appointments", json={"patient": pid, "queue": clinic.slotted, "date": clinic.tomorrow(),
                                                "slot": "15:00"}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(attempt, patients))
    assert sorted(statuses) == [201, 201] + [409] * 10
    with portal.db() as db:
        n = db.execute("SELECT count(*) FROM appointments WHERE queue = ? AND slot = '15:00' AND status = 'booked'",
                       (clinic.slotted,)).fetchone()[0]
    assert n == 2


def _issue_walkin(desk: httpx.Client, queue: str) -> dict[str, Any]:
    r = desk.post(f"/queues/{queue}/tickets", json={"name": "Walk In"})
    assert r.status_code == 201, r.text
    return dict(r.json()["ticket"])


def test_reception_check_in_orders_by_slot_time(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    me = add_patient(p)
    appt = _book(p, me["id"], clinic.slotted, clinic.today(), clinic.current_slot())
    desk = portal.staff("reception")
    walkin = _issue_walkin(desk, clinic.slotted)  # arrived after the slot began
    r = desk.post(f"/appointments/{appt['id']}/check-in")
    assert r.status_code == 201, r.text
    ticket = r.json()["ticket"]
    assert ticket["appointment_id"] == str(appt["id"]) and ticket["name"] is None and r.json()["track_url"]
    assert ticket["position"] == 1  # placed at its slot time, ahead of the later walk-in
    assert (ticket["source"], walkin["source"]) == ("appointment", "reception")
    assert desk.get(f"/tickets/{walkin['id']}").json()["ticket"]["position"] == 2
    assert error_of(desk.post(f"/appointments/{appt['id']}/check-in")) == (409, "not_booked")
    shown = desk.get(f"/appointments/{appt['id']}").json()
    assert (shown["patient_name"], shown["status"], shown["ticket_id"]) == ("Asha Verma", "checked_in", ticket["id"])
    assert error_of(p.get(f"/appointments/{appt['id']}"))[0] == 401
    listed = p.get("/me/appointments").json()["appointments"][0]
    assert listed["ticket"]["label"] == ticket["label"] and listed["ticket"]["token"] == ticket["token"]


def test_arrival_policy_puts_the_appointment_behind_earlier_walk_ins(portal: LiveServer, clinic: Clinic) -> None:
    admin = portal.staff("admin")
    admin.put(f"/queues/{clinic.slotted}/slots", json={"slot_minutes": 60, "capacity": 2, "opens": "00:00",
                                                       "closes": "23:00", "order_policy": "arrival"})
    p = register(portal)
    appt = _book(p, add_patient(p)["id"], clinic.slotted, clinic.today(), clinic.current_slot())
    desk = portal.staff("reception")
    _issue_walkin(desk, clinic.slotted)
    assert desk.post(f"/appointments/{appt['id']}/check-in").json()["ticket"]["position"] == 2


def test_the_patient_checks_in_on_site_with_the_clinic_qr(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    appt = _book(p, add_patient(p)["id"], clinic.by_date, clinic.today())
    assert error_of(p.post(f"/appointments/{appt['id']}/check-in", json={})) == (403, "not_on_site")
    assert error_of(p.post(f"/appointments/{appt['id']}/check-in", json={"code": "x" * 22})) == (403, "not_on_site")
    qr = portal.staff("reception").get(f"/clinics/{clinic.id}/checkin-code").json()
    assert qr["url"].endswith(f"/account?checkin={qr['code']}") and qr["qr_svg"].startswith("<svg")
    assert error_of(portal.client().get(f"/clinics/{clinic.id}/checkin-code"))[0] == 401
    r = p.post(f"/appointments/{appt['id']}/check-in", json={"code": qr["code"]})
    assert r.status_code == 201, r.text
    assert r.json()["ticket"]["queue"] == clinic.by_date
    other = register(portal)
    assert error_of(other.post(f"/appointments/{appt['id']}/check-in", json={"code": qr["code"]})) == (404, "not_found")


def test_check_in_only_on_the_day(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    appt = _book(p, add_patient(p)["id"], clinic.slotted, clinic.tomorrow(), "10:00")
    assert error_of(portal.staff("reception").post(f"/appointments/{appt['id']}/check-in")) == (409, "wrong_day")


def _context(portal: LiveServer) -> Context:
    s = portal.app.state
    return Context(portal.settings, s.redis, s.engine, s.store)


def test_no_shows_after_the_grace_period_and_reminders(portal: LiveServer, clinic: Clinic, redis_url: str) -> None:
    p = register(portal, consent={"notifications": True})
    p.post("/accounts/verify", json={"channel": "email", "code": codes_sent(redis_url, p.email)[0]})
    appt = _book(p, add_patient(p)["id"], clinic.slotted, clinic.tomorrow(days=2), "10:00")
    row = portal.run(appointments.get(portal.app.state.store, appt["id"]))
    ctx = _context(portal)
    portal.run(duty.tick(ctx, row["at_ms"] - 25 * 3600_000))  # too early for anything
    portal.run(duty.tick(ctx, row["at_ms"] - 23 * 3600_000))  # the day before
    portal.run(duty.tick(ctx, row["at_ms"] - 23 * 3600_000 + 60_000))  # taken once
    portal.run(duty.tick(ctx, row["at_ms"] - 50 * 60_000))  # an hour before
    reminders = [r for r in notice_requests(redis_url) if r["kind"] == "appointment_reminder"]
    assert [(r["channel"], r["to"]) for r in reminders] == [("email", p.email)] * 2  # verified contact only
    booked_late = _book(p, add_patient(p, name="B", relation="other", age=20, consent_confirmed=True)["id"],
                        clinic.slotted, clinic.tomorrow(), "10:00")  # less than a day ahead: no "tomorrow" reminder
    late = portal.run(appointments.get(portal.app.state.store, booked_late["id"]))
    assert portal.run(appointments.take_due_reminders(portal.app.state.store, late["at_ms"] - 23 * 3600_000)) == []
    assert reminders[0]["context"]["slot"] == "10:00" and reminders[0]["context"]["clinic"] == "Zone Clinic"
    portal.run(duty.tick(ctx, row["at_ms"] + 29 * 60_000))
    assert p.get("/me/appointments").json()["appointments"][0]["status"] == "booked"
    portal.run(duty.tick(ctx, row["at_ms"] + 31 * 60_000))  # grace (30 min) is over
    assert p.get("/me/appointments").json()["appointments"][0]["status"] == "no_show"


def test_no_reminder_without_consent(portal: LiveServer, clinic: Clinic, redis_url: str) -> None:
    p = register(portal)
    p.post("/accounts/verify", json={"channel": "email", "code": codes_sent(redis_url, p.email)[0]})
    appt = _book(p, add_patient(p)["id"], clinic.slotted, clinic.tomorrow(days=2), "10:00")
    row = portal.run(appointments.get(portal.app.state.store, appt["id"]))
    portal.run(duty.tick(_context(portal), row["at_ms"] - 23 * 3600_000))
    assert not [r for r in notice_requests(redis_url) if r["kind"].startswith("appointment")]


def _cli(portal: LiveServer, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real console script, in its own process, on the test server's data and Redis."""
    env = {**os.environ, "QTRAQ_DATA_DIR": str(portal.settings.data_dir), "QTRAQ_REDIS_URL": portal.settings.redis_url,
           "QTRAQ_LOG_LEVEL": "warning"}
    return subprocess.run([sys.executable, "-m", "qtraq_live.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=60 * TIMEOUT_FACTOR, check=False)


@pytest.mark.slow  # the console script three times
def test_import_appointments_from_csv(portal: LiveServer, clinic: Clinic, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,mobile,email,queue,date,slot\n"
                   f"Kiran Rao,+919800000001,kiran@mail.example,{clinic.slotted},{clinic.tomorrow()},10:00\n"
                   f"Lata,98000,,{clinic.slotted},{clinic.tomorrow()},10:00\n"
                   f"Mohan,,mohan@,{clinic.by_date},{clinic.tomorrow()},\n"
                   f"Nina,,,nope,{clinic.tomorrow()},\n"
                   f"Om,,,{clinic.slotted},{clinic.tomorrow()},10:00\n"
                   f"Pia,,,{clinic.slotted},{clinic.tomorrow()},10:00\n")
    run = _cli(portal, "import", "appointments", str(bad), "--dry-run")
    err = run.stderr
    assert run.returncode == 1, err
    assert "line 3: mobile:" in err and "line 4: email:" in err and "line 5: queue:" in err
    assert "line 7: slot: this slot is full" in err and "line 2" not in err and "line 6" not in err
    good = tmp_path / "good.csv"
    good.write_text("name,mobile,email,queue,date,slot\n"
                    "Kiran Rao,+919800000001,kiran@mail.example,"
                    f"{clinic.slotted},{clinic.today()},{clinic.later_slot()}\n"
                    f"Om,,,{clinic.by_date},{clinic.tomorrow()},\n")
    run = _cli(portal, "import", "appointments", str(good), "--dry-run")
    assert run.returncode == 0 and "2 row(s) checked" in run.stdout, run.stderr
    with portal.db() as db:
        assert db.execute("SELECT count(*) FROM appointments").fetchone()[0] == 0
    run = _cli(portal, "import", "appointments", str(good))
    assert run.returncode == 0 and "2 appointment(s) imported" in run.stdout, run.stderr
    with portal.db() as db:
        appt_id = db.execute("SELECT appointment_id FROM appointment_contacts WHERE name = 'Kiran Rao'").fetchone()[0]
    desk = portal.staff("reception")
    assert desk.get(f"/appointments/{appt_id}").json()["patient_name"] == "Kiran Rao"
    ticket = desk.post(f"/appointments/{appt_id}/check-in").json()["ticket"]
    assert ticket["source"] == "import"
    found = portal.run(recipients_for_ticket(portal.app.state.store, ticket["id"]))
    assert {(r.channel, r.to) for r in found} == {("sms", "+919800000001"), ("email", "kiran@mail.example")}


def test_a_bad_header_is_reported(portal: LiveServer, tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("who,when\nA,B\n")
    run = _cli(portal, "import", "appointments", str(f))
    assert run.returncode == 1 and "line 1: header must be name,mobile,email,queue,date,slot" in run.stderr
