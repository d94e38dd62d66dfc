"""DPDP Rules readiness (issue #21), against a running server: consent records with the notice
version, honest walk-in notices and withdrawal from the ticket page, children, the year-long
pseudonymous security log, the breach report, the nominee. docs/privacy.md's DPDP table names
each test here.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess

import asyncio
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.record.persister import Persister
from qtraq_live.runtime.duties import Context
from support_serve import clean_env
from tests.support_accounts import (PASSWORD, codes_sent, live_portal, off_loop, portal,  # noqa: F401
                                    register, unique_contacts, verify)
from tests.support_http import LiveServer, error_of
from tests.support_notify import (NotifyEnv, Sink, SmtpServer, Workers, await_until, notifier, notify_env,  # noqa: F401
                                  sink, smtp, workers)


def _db(live: LiveServer) -> sqlite3.Connection:
    return live.db()


def test_consent_records_keep_the_notice_version_purposes_channel_and_time(portal: LiveServer) -> None:
    p = register(portal, consent={"notifications": True, "analytics": False, "marketing": False})
    assert p.client.put("/me/consent", json={"notifications": True, "analytics": True,
                                             "marketing": False}).status_code == 200
    records = p.get("/me/export").json()["consent_records"]
    version = portal.settings["privacy.notice_version"]
    assert [(r["notice_version"], r["purposes"], r["channel"]) for r in records] == [
        (version, ["notifications"], "web"), (version, ["analytics", "notifications"], "web")]
    assert all(r["at"].endswith("Z") for r in records)
    assert portal.client().get("/privacy").json()["notice_version"] == version
    portal.clinic("w1", ("wq",), self_checkin=True)
    joined = portal.client().post("/public/queues/wq/join", json={"mobile": "+919812300011", "notify": True})
    with _db(portal) as db:
        row = db.execute("SELECT notice_version, purposes, channel FROM consent_records WHERE ticket_id = ?",
                         (joined.json()["ticket"]["id"],)).fetchone()
    assert tuple(row) == (version, '["notifications"]', "self_check_in")


def test_walk_in_forms_tell_the_real_retention_and_the_ticket_page_withdraws(portal: LiveServer) -> None:
    portal.clinic("w1", ("wq",), self_checkin=True)
    days = portal.settings["privacy.walkin_contact_days"]
    for lang in ("en", "hi"):
        page = httpx.get(f"{portal.url}/join/wq?lang={lang}").text
        assert f"{days}" in page and 'href="/privacy' in page and "only for this visit" not in page
    notice = httpx.get(f"{portal.url}/privacy").text
    assert "Data Fiduciary" in notice and "Data Protection Board" in notice
    assert portal.settings["privacy.notice_version"] in notice
    joined = portal.client().post("/public/queues/wq/join", json={"name": "Withdrawing Walker",
                                                                  "mobile": "+919812300022", "notify": True}).json()
    token, tid = joined["ticket"]["token"], joined["ticket"]["id"]
    page = httpx.get(f"{portal.url}/t/{token}").text
    assert 'id="p-withdraw"' in page and "/static/ticket_privacy.js" in page
    assert portal.client().post(f"/t/{token}/withdraw", json={}).json() == {"withdrawn": True}
    with _db(portal) as db:
        assert db.execute("SELECT count(*) FROM ticket_contacts WHERE ticket_id = ?", (tid,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM consent_records WHERE ticket_id = ?", (tid,)).fetchone()[0] == 0
    live = portal.run(portal.engine.ticket(tid))
    assert live is not None and live["status"] == "waiting" and not live.get("name")
    assert error_of(portal.client().post("/t/" + "x" * 32 + "/withdraw", json={}))[0] == 404


def test_a_minor_cannot_register_and_a_child_s_guardian_is_verified(portal: LiveServer, redis_url: str) -> None:
    email, _ = unique_contacts()
    minor = portal.client().post("/accounts", json={"name": "Young One", "email": email, "password": PASSWORD,
                                                    "date_of_birth": "2012-01-01"})
    assert error_of(minor) == (422, "minor")
    p = register(portal)
    child = {"name": "Little One", "relation": "child", "age": 6, "consent_confirmed": True, "guardian": True}
    assert error_of(p.post("/me/patients", json=child)) == (422, "guardian_unverified")
    assert verify(p, "mobile", codes_sent(redis_url, p.mobile)[0]).status_code == 200
    assert error_of(p.post("/me/patients", json={**child, "guardian_method": "document"})) == (422, "missing_field")
    by_contact = p.post("/me/patients", json=child).json()
    by_document = p.post("/me/patients", json={**child, "name": "Other One", "guardian_method": "document",
                                               "guardian_document": "digilocker:ABC-123"}).json()
    recorded = {g["patient_id"]: g for g in p.get("/me/export").json()["guardian_verifications"]}
    assert (recorded[by_contact["id"]]["method"], recorded[by_contact["id"]]["verified_contact"]) == (
        "verified_account", "mobile")
    assert (recorded[by_document["id"]]["method"], recorded[by_document["id"]]["reference"]) == (
        "document", "digilocker:ABC-123")


def test_the_security_log_is_pseudonymous_append_only_and_outlives_erasure(portal: LiveServer) -> None:
    p = register(portal, name="Logged Person")
    bad = portal.client().post("/auth/account-login", json={"email": p.email, "password": "not the password"})
    assert bad.status_code == 401
    assert portal.client().post("/auth/account-login", json={"email": p.email, "password": PASSWORD}).status_code == 200
    assert p.get("/me/export").status_code == 200
    p.client.put("/me/consent", json={"notifications": True, "analytics": False, "marketing": False})
    staff = portal.client().post("/auth/login", json={"username": "nobody-here", "password": "x"})
    assert staff.status_code == 401
    leaver = portal.add_user("reception")
    admin = portal.staff("admin")  # a staff action: an admin withdraws a receptionist's access
    uid = next(u["id"] for u in admin.get("/admin/users").json()["users"] if u["username"] == leaver)
    assert admin.patch(f"/admin/users/{uid}", json={"disabled": True}).status_code == 200
    assert p.client.delete("/me").status_code == 204
    with _db(portal) as db:
        rows = db.execute("SELECT event, subject, actor, detail FROM security_log ORDER BY id").fetchall()
        events = [r["event"] for r in rows]
        for event in ("account.registered", "account.login_failed", "account.login", "account.exported",
                      "consent.changed", "staff.login_failed", "staff.login", "staff.user.disable", "account.erased"):
            assert event in events, events
        failed = next(r for r in rows if r["event"] == "staff.login_failed")
        assert json.loads(failed["detail"])["username"] == "nobody-here"  # failures with the username
        disabled = next(r for r in rows if r["event"] == "staff.user.disable")
        assert disabled["subject"].startswith("user:") and disabled["actor"]  # who did what to whom, by id
        text = json.dumps([tuple(r) for r in rows])
        assert p.email not in text and p.mobile not in text and "Logged Person" not in text
        subjects = {r["subject"] for r in rows if r["event"].startswith("account.") and r["event"] != "account.login_failed"}
        assert len(subjects) == 1 and next(iter(subjects)).startswith("account:")  # one pseudonym, kept
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE security_log SET event = 'x'")
        with pytest.raises(sqlite3.DatabaseError, match="at least a year"):
            db.execute("DELETE FROM security_log")


def test_breach_report_lists_people_categories_and_drafts_the_notices(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    assert verify(p, "email", codes_sent(redis_url, p.email)[0]).status_code == 200
    env = clean_env(portal.settings.data_dir, QTRAQ_REDIS_URL=redis_url,
                    QTRAQ_GRIEVANCE_CONTACT="Grievance Officer, grievance@clinic.example")
    text = subprocess.run(["qtraq-live", "breach-report", "--from", "2000-01-01", "--to", "2100-01-01"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    assert p.email in text.stdout and "72 hours" in text.stdout and "Data Protection Board" in text.stdout
    out = subprocess.run(["qtraq-live", "breach-report", "--from", "2000-01-01", "--to", "2100-01-01", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    report = json.loads(out.stdout)
    person = next(x for x in report["people"] if {"channel": "email", "to": p.email} in x["notify"])
    assert {"identity", "contact"} <= set(person["categories"]) and person["subject"].startswith("account:")
    assert report["security_events"]["account.registered"] >= 1
    assert "grievance@clinic.example" in report["notice_draft"]
    bad = subprocess.run(["qtraq-live", "breach-report", "--from", "yesterday", "--to", "2100-01-01"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "--from" in bad.stderr


BREACH = ["--from", "2000-01-01", "--to", "2100-01-01"]


def _breach_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qtraq-live", "breach-report", *BREACH, *args], capture_output=True, text=True,
                          env=clean_env(Path(env["QTRAQ_DATA_DIR"]), **env), timeout=120)


async def _quiet(aredis: aioredis.Redis) -> bool:
    """The notifier has handled every request and no notice job waits or runs."""
    return (await aredis.xlen(keys.NOTICE_REQUESTS) == 0 and not await aredis.llen("rq:queue:notify")
            and not await aredis.zcard("rq:wip:notify"))


async def test_breach_notices_are_filled_in_each_person_s_language_and_sent_once(
        live_portal: LiveServer, notifier: Context, workers: Workers, sink: Sink, smtp: SmtpServer,
        aredis: aioredis.Redis, notify_env: NotifyEnv, redis_url: str) -> None:
    workers.start(1)
    hindi = await off_loop(register, live_portal, lang="hi")
    code_sms = await await_until(lambda: next((m for r in sink.to(hindi.mobile)
                                               if (m := re.search(r"\b\d{6}\b", r["message"]))), None),
                                 "the verification code by SMS", timeout=30)
    assert (await off_loop(verify, hindi, "mobile", code_sms.group())).status_code == 200
    desk = live_portal.bearer("reception")
    walk_in = {"name": "Murugan Selvam", "mobile": "+919812377001", "lang": "ta"}
    issued = await off_loop(desk.post, "/queues/gp/tickets", json=walk_in)
    assert issued.status_code == 201
    await Persister(aredis, notifier.store).drain()  # the ticket's row (its clinic, its language) in SQLite
    env = {**notify_env.env, "QTRAQ_GRIEVANCE_CONTACT": "dpo@clinic.example", "QTRAQ_FIDUCIARY": "Asha Hospital"}
    incident = ["--nature", "access", "--measures", "access_revoked,passwords_reset"]

    dry = await asyncio.to_thread(_breach_cli, env, *incident)
    assert dry.returncode == 0, dry.stderr
    assert "Nothing was sent" in dry.stdout and hindi.mobile in dry.stdout and walk_in["mobile"] in dry.stdout
    assert "बिना अनुमति पहुँच" in dry.stdout and "அனுமதியற்ற அணுகல்" in dry.stdout  # each in its own language
    assert not await aredis.keys(keys.notice("a:*breach*"))  # no notice in the ledger
    assert "--send" in error_of_cli(await asyncio.to_thread(_breach_cli, env, "--send"))  # must say what and what was done
    assert "--nature" in error_of_cli(await asyncio.to_thread(_breach_cli, env, "--nature", "x"))
    assert "--measures" in error_of_cli(await asyncio.to_thread(_breach_cli, env, "--measures", "prayed"))

    no_officer = {k: v for k, v in env.items() if k != "QTRAQ_GRIEVANCE_CONTACT"}
    refused = error_of_cli(await asyncio.to_thread(_breach_cli, no_officer, *incident, "--send"))
    assert "privacy.grievance_contact" in refused  # nothing goes out half filled in
    assert not await aredis.keys(keys.notice("a:*breach*"))

    sent = await asyncio.to_thread(_breach_cli, env, *incident, "--send")
    assert sent.returncode == 0, sent.stderr
    assert "Queued 2 notices to 2 people" in sent.stdout

    async def in_ledger() -> bool:
        return len(await aredis.keys(keys.notice("a:*breach*"))) == 2  # one per person and contact

    await await_until(in_ledger, "the notices in the ledger")
    to_hindi = await await_until(lambda: [r["message"] for r in sink.to(hindi.mobile)
                                          if "Asha Hospital" in r["message"]], "the Hindi breach SMS", timeout=30)
    text = to_hindi[0]
    for part in ("Asha Hospital", "2000-01-01 00:00", "2100-01-01 00:00", "बिना अनुमति पहुँच",  # who, when, what
                 "नाम, जन्म तिथि;", "मोबाइल नंबर या ईमेल;", "पासवर्ड (कूट रूप में);",  # which data
                 "पहुँच हटाई;", "पासवर्ड रीसेट किए;",  # what the clinic did
                 "dpo@clinic.example", "डेटा संरक्षण बोर्ड"):  # whom to ask, where to complain
        assert part in text, (part, text)
    assert "कुंजियाँ बदलीं" not in text  # only the measures given
    to_tamil = await await_until(lambda: [r["message"] for r in sink.to(walk_in["mobile"])
                                          if "Asha Hospital" in r["message"]], "the Tamil breach SMS", timeout=30)
    assert "பெயர்;" in to_tamil[0] and "அனுமதியற்ற அணுகல்" in to_tamil[0] and "dpo@clinic.example" in to_tamil[0]
    assert "கடவுச்சொல் (மறைகுறியீடு)" not in to_tamil[0]  # a walk-in has no password here
    assert not [m for m in smtp.messages if m["To"] == hindi.email and "Asha Hospital" in m.as_string()]  # unverified

    again = await asyncio.to_thread(_breach_cli, env, *incident, "--send")  # the same incident once more
    assert again.returncode == 0, again.stderr
    await await_until(lambda: _quiet(aredis), "the notifier and the worker to finish")
    breach_sms = [r for r in sink.received if "Asha Hospital" in r["message"]]
    assert sorted(r["to"] for r in breach_sms) == sorted([hindi.mobile, walk_in["mobile"]])  # each exactly once


def error_of_cli(done: subprocess.CompletedProcess[str]) -> str:
    """The message of a refused command line (exit 2, nothing done)."""
    assert done.returncode == 2 and "Queued" not in done.stdout, (done.returncode, done.stdout, done.stderr)
    return done.stderr


def test_a_nominee_can_be_recorded_changed_and_removed(portal: LiveServer) -> None:
    p = register(portal)
    assert p.get("/me/nominee").json() == {"nominee": None}
    assert error_of(p.client.put("/me/nominee", json={"name": "Ravi", "relation": "son", "contact": "nope"}))[0] == 422
    put = p.client.put("/me/nominee", json={"name": "Ravi Verma", "relation": "son", "contact": "+919812300033"})
    assert put.status_code == 200 and put.json()["nominee"]["recorded_at"].endswith("Z")
    assert p.get("/me/export").json()["nominee"]["name"] == "Ravi Verma"
    assert p.client.delete("/me/nominee").status_code == 204
    assert error_of(p.client.delete("/me/nominee"))[0] == 404
