"""Payment, never card data, against the running server: the method chosen at booking, a
clinic's UPI id and a queue's fee (and the UPI link and QR they put on the ticket page),
reception marking a visit paid, method counts in the stats, and the mirror a rebuild restores."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from qtraq_live.accounts import payments
from qtraq_live.engine import redis_keys as keys
from tests.support_accounts import Clinic, add_patient, clinic, portal, register  # noqa: F401
from tests.support_http import LiveServer, error_of


def test_a_booking_records_how_the_patient_will_pay_and_reception_marks_it_paid(
        portal: LiveServer, clinic: Clinic) -> None:  # noqa: F811
    p = register(portal)
    me = add_patient(p)
    base = {"patient": me["id"], "queue": clinic.by_date, "date": clinic.today()}
    assert error_of(p.post("/me/appointments", {**base, "payment_method": "card"}))[0] == 422
    assert error_of(p.post("/me/appointments", {**base, "card_number": "4111111111111111"})) == (422, "unknown_field")
    r = p.post("/me/appointments", {**base, "payment_method": "card_at_clinic"})
    assert r.status_code == 201 and r.json()["payment_method"] == "card_at_clinic" and r.json()["paid"] is False
    appt = r.json()["id"]
    assert p.get("/me/appointments").json()["appointments"][0]["payment_method"] == "card_at_clinic"
    assert error_of(portal.staff("doctor", (clinic.by_date,)).post(f"/appointments/{appt}/paid", json={}))[0] == 403
    desk = portal.staff("reception")
    paid = desk.post(f"/appointments/{appt}/paid", json={})
    assert paid.status_code == 200 and paid.json() == {"id": appt, "payment_method": "card_at_clinic", "paid": True}
    assert error_of(desk.post(f"/appointments/{appt}/paid", json={})) == (409, "already_paid")
    assert error_of(desk.post("/appointments/99999/paid", json={})) == (404, "not_found")
    assert error_of(desk.post(f"/appointments/{appt}/paid", json={"amount": 5}))[0] == 422
    assert p.get("/me/appointments").json()["appointments"][0]["paid"] is True
    with portal.db() as db:
        assert db.execute("SELECT action FROM audit_log WHERE action = 'appointment.paid'").fetchall() != []


def test_stats_count_methods_not_people(portal: LiveServer, clinic: Clinic) -> None:  # noqa: F811
    for i in range(6):
        p = register(portal)
        me = add_patient(p)
        method = "upi" if i < 5 else "insurance"
        assert p.post("/me/appointments", {"patient": me["id"], "queue": clinic.by_date, "date": clinic.today(),
                                           "payment_method": method}).status_code == 201
    with portal.db() as db:  # the stats read the clinic from the record, which the persister writes
        db.execute("INSERT OR IGNORE INTO clinics (id, name, timezone, mask_names, lang, created_at, updated_version)"
                   " VALUES (?, 'Zone Clinic', ?, 0, 'en', 0, 0)", (clinic.id, clinic.tz))
        db.commit()
    stats = portal.bearer("admin").get(f"/clinics/{clinic.id}/stats")
    assert stats.status_code == 200, stats.text
    methods = stats.json()["payment_methods"]
    assert methods["upi"] == {"suppressed": False, "appointments": 5, "paid": 0}
    assert methods["insurance"] == {"suppressed": True}  # one booking: could point at one person
    assert methods["cash"] == {"suppressed": False, "appointments": 0, "paid": 0}


def test_a_fee_and_a_upi_id_put_a_upi_link_and_qr_on_the_ticket_page(portal: LiveServer) -> None:  # noqa: F811
    admin = portal.bearer("admin")
    assert error_of(admin.patch("/clinics/c1", json={"upi_vpa": "not a vpa"}))[0] == 422
    assert error_of(admin.patch("/queues/gp", json={"fee": -1}))[0] == 422
    assert error_of(portal.bearer("reception").patch("/queues/gp", json={"fee": 300}))[0] == 403
    version = admin.get("/clinics/c1").json()["version"]
    assert admin.patch("/clinics/c1", json={"upi_vpa": "cityclinic@okicici"}).json()["upi_vpa"] == "cityclinic@okicici"
    assert admin.patch("/queues/gp", json={"fee": 300}).json()["fee"] == 300
    shown = admin.get("/clinics/c1").json()
    assert shown["version"] == version  # payment settings are not queue changes
    assert shown["upi_vpa"] == "cityclinic@okicici"
    assert {q["id"]: q["fee"] for q in shown["queues"]} == {"gp": 300, "eye": None}

    desk = portal.bearer("reception")
    paying = desk.post("/queues/gp/tickets", json={}).json()["ticket"]
    page = httpx.get(f"{portal.url}/t/{paying['token']}")
    assert page.status_code == 200 and 'id="p-pay"' in page.text and "<svg" in page.text
    link = page.text.split('id="p-pay-link" href="')[1].split('"')[0].replace("&amp;", "&")
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    assert parts.scheme == "upi" and parts.netloc == "pay"
    assert query["pa"] == ["cityclinic@okicici"] and query["am"] == ["300.00"] and query["cu"] == ["INR"]
    assert query["tn"] == [paying["label"]]
    free = desk.post("/queues/eye/tickets", json={}).json()["ticket"]
    assert 'id="p-pay"' not in httpx.get(f"{portal.url}/t/{free['token']}").text
    # A fee of 0 clears it, and the page stops offering a payment.
    admin.patch("/queues/gp", json={"fee": 0})
    assert 'id="p-pay"' not in httpx.get(f"{portal.url}/t/{paying['token']}").text


def test_a_hostile_clinic_name_stays_inside_the_upi_link(portal: LiveServer) -> None:  # noqa: F811
    admin = portal.bearer("admin")
    admin.patch("/clinics/c1", json={"name": 'Dr "X" <script>alert(1)</script>&pn=evil', "upi_vpa": "dr.x@upi"})
    admin.patch("/queues/gp", json={"fee": 150})
    ticket = portal.bearer("reception").post("/queues/gp/tickets", json={}).json()["ticket"]
    page = httpx.get(f"{portal.url}/t/{ticket['token']}").text
    assert "<script>alert(1)" not in page
    link = page.split('id="p-pay-link" href="')[1].split('"')[0].replace("&amp;", "&")
    assert parse_qs(urlsplit(link).query)["pn"] == ['Dr "X" <script>alert(1)</script>&pn=evil'[:50]]


def test_the_payment_mirror_is_restored_from_the_record(portal: LiveServer) -> None:  # noqa: F811
    admin = portal.bearer("admin")
    admin.patch("/clinics/c1", json={"upi_vpa": "c1@okaxis"})
    admin.patch("/queues/eye", json={"fee": 500})
    redis = portal.app.state.redis
    portal.run(redis.delete(keys.payment("c1")))
    assert admin.get("/clinics/c1").json()["upi_vpa"] is None
    assert portal.run(payments.mirror_all(portal.app.state.store, redis)) == 2
    shown = admin.get("/clinics/c1").json()
    assert shown["upi_vpa"] == "c1@okaxis" and {q["id"]: q["fee"] for q in shown["queues"]}["eye"] == 500
