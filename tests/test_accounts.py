"""Registration, contact verification, login and its session log, profile corrections,
consent and linked patients, all over real HTTP against the real app, Redis and SQLite."""

from __future__ import annotations

import httpx
import pytest
import redis

from qtraq_live.accounts import codes
from qtraq_live.engine import redis_keys as keys
from tests.support_accounts import (PASSWORD, add_patient, codes_sent, notice_requests, portal,  # noqa: F401
                                    register, unique_contacts, verify)
from tests.support_http import LiveServer, error_of

GOOD = {"name": "Ravi Kumar", "password": PASSWORD}


def test_registration_sends_a_welcome_and_one_code_per_contact(portal: LiveServer, redis_url: str) -> None:
    p = register(portal, gender="male", date_of_birth="1990-04-01", state="Kerala", city="Kochi",
                 consent={"notifications": True, "analytics": False, "marketing": False})
    me = p.get("/me").json()
    assert me["email_verified"] is False and me["mobile_verified"] is False
    assert (me["gender"], me["date_of_birth"], me["state"], me["city"]) == ("male", "1990-04-01", "Kerala", "Kochi")
    assert me["consent"] == {"notifications": True, "analytics": False, "marketing": False}
    sent = notice_requests(redis_url)
    assert {(r["kind"], r["channel"]) for r in sent} == {
        ("welcome", "email"), ("welcome", "sms"), ("verify_code", "email"), ("verify_code", "sms")}
    assert len(codes_sent(redis_url, p.email)[0]) == 6
    # the code is kept only as a keyed hash
    with portal.db() as db:
        stored = [r["code_hash"] for r in db.execute("SELECT code_hash FROM account_codes")]
    assert all(c not in stored for c in (codes_sent(redis_url, p.email) + codes_sent(redis_url, p.mobile)))


def test_each_contact_is_verified_by_its_own_code(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    email_code, mobile_code = codes_sent(redis_url, p.email)[0], codes_sent(redis_url, p.mobile)[0]
    if email_code != mobile_code:  # the email's code does not verify the mobile
        assert error_of(verify(p, "mobile", email_code)) == (422, "wrong_code")
    assert p.post("/accounts/verify", json={"channel": "email", "code": email_code}).json()["email_verified"] is True
    me = p.post("/accounts/verify", json={"channel": "mobile", "code": mobile_code}).json()
    assert me["mobile_verified"] is True
    assert error_of(verify(p, "email", email_code)) == (409, "already_verified")


def test_five_wrong_tries_spend_a_code(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    right = codes_sent(redis_url, p.email)[0]
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(codes.MAX_TRIES):
        assert error_of(p.post("/accounts/verify", json={"channel": "email", "code": wrong})) == (422, "wrong_code")
    assert error_of(p.post("/accounts/verify", json={"channel": "email", "code": right})) == (409, "no_code")


def test_an_expired_code_is_refused(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    with portal.db() as db:
        db.execute("UPDATE account_codes SET expires_at = 0")
    code = codes_sent(redis_url, p.email)[0]
    assert error_of(p.post("/accounts/verify", json={"channel": "email", "code": code})) == (422, "code_expired")


def test_resending_a_code_is_rate_limited(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    r = p.post("/accounts/verify/resend", json={"channel": "email"})
    assert error_of(r) == (429, "rate_limited") and int(r.headers["Retry-After"]) > 0
    with portal.db() as db:  # a minute later
        db.execute("UPDATE account_codes SET sent_at = sent_at - 61000")
    minute = redis.Redis.from_url(redis_url)
    minute.delete(*minute.keys("qt:rl:code-dest-minute:*"))  # the per-destination minute is over too
    minute.close()
    assert p.post("/accounts/verify/resend", json={"channel": "email"}).status_code == 200
    first, second = codes_sent(redis_url, p.email)
    if first != second:  # the new code replaces the old one
        assert error_of(p.post("/accounts/verify", json={"channel": "email", "code": first})) == (422, "wrong_code")
    assert p.post("/accounts/verify", json={"channel": "email", "code": second}).status_code == 200


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""), ("name", "   "), ("name", "x" * 81), ("name", 5),
    ("email", "not-an-email"), ("email", "a@b"), ("mobile", "12345"), ("mobile", "+0123456789"),
    ("password", "short"), ("password", "password123"), ("gender", "robot"),
    ("date_of_birth", "1990-02-30"), ("date_of_birth", "01/02/1990"), ("date_of_birth", "2999-01-01"),
    ("state", ""), ("city", "y" * 81), ("lang", "fr"), ("consent", {"email": True}),
    ("consent", {"notifications": "yes"}), ("nickname", "Ravi"),
])
def test_every_bad_registration_field_is_named(portal: LiveServer, field: str, value: object) -> None:
    email, _ = unique_contacts()
    r = portal.client().post("/accounts", json={**GOOD, "email": email, field: value})
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_a_contact_is_required(portal: LiveServer) -> None:
    r = portal.client().post("/accounts", json=GOOD)
    assert error_of(r) == (422, "missing_field") and "email" in r.json()["error"]["message"]


def test_login_logs_time_ip_os_and_browser(portal: LiveServer) -> None:
    p = register(portal)
    c = portal.client(headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) "
                                             "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 "
                                             "Safari/604.1"})
    assert error_of(c.post("/auth/account-login", json={"email": p.email, "password": "wrong password!!"})) == (
        401, "invalid_credentials")
    r = c.post("/auth/account-login", json={"mobile": p.mobile, "password": PASSWORD})
    assert r.status_code == 200 and r.json()["csrf_token"] and r.json()["account"]["id"] == p.id
    sessions = c.get("/me/sessions").json()["sessions"]
    assert [(s["os"], s["browser"]) for s in sessions] == [("iOS 17", "Safari 17"), ("Android 14", "Chrome 120")]
    assert all(s["ip"] == "127.0.0.1" and s["at"].endswith("Z") for s in sessions)
    assert error_of(c.post("/auth/account-login", json={"password": PASSWORD})) == (422, "missing_field")


def test_account_login_is_rate_limited(portal: LiveServer) -> None:
    p = register(portal)
    c = portal.client()
    statuses = [c.post("/auth/account-login", json={"email": p.email, "password": "not the password"}).status_code
                for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429


def test_writes_need_the_csrf_token_and_a_session(portal: LiveServer) -> None:
    p = register(portal)
    token = p.client.headers.pop("X-CSRF-Token")
    assert error_of(p.client.patch("/me", json={"city": "Pune"})) == (403, "csrf_failed")
    p.client.headers["X-CSRF-Token"] = token
    assert p.client.patch("/me", json={"city": "Pune"}).json()["city"] == "Pune"
    assert error_of(portal.client().get("/me")) == (401, "not_authenticated")
    staff = portal.staff("admin")
    assert error_of(staff.get("/me")) == (401, "not_authenticated")


def test_every_field_can_be_corrected(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    assert verify(p, "email", codes_sent(redis_url, p.email)[0]).status_code == 200
    new_email, new_mobile = unique_contacts()
    change = {"name": "Ravi K.", "email": new_email, "mobile": new_mobile, "gender": "undisclosed",
              "date_of_birth": "1985-12-31", "state": "Goa", "city": "Panaji", "lang": "hi"}
    me = p.client.patch("/me", json=change).json()
    assert {k: me[k] for k in change} == change
    assert me["email_verified"] is False  # a new address must be verified again
    assert codes_sent(redis_url, new_email) and codes_sent(redis_url, new_mobile)
    me = p.client.patch("/me", json={"state": None, "email": None}).json()
    assert me["state"] is None and me["email"] is None and me["mobile"] == new_mobile
    assert error_of(p.client.patch("/me", json={"mobile": None})) == (422, "missing_field")
    assert error_of(p.client.patch("/me", json={"name": None}))[0] == 422
    assert error_of(p.client.patch("/me", json={"password": "another long passphrase"})) == (422, "wrong_password")
    new_password = "another long passphrase"
    assert p.client.patch("/me", json={"password": new_password, "current_password": PASSWORD}).status_code == 200
    login = portal.client().post("/auth/account-login", json={"mobile": new_mobile, "password": new_password})
    assert login.status_code == 200


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""), ("email", "x@"), ("mobile", "+91 98765"), ("gender", 1), ("date_of_birth", "1990-13-01"),
    ("city", ""), ("lang", "de"), ("password", "tiny"), ("id", 3), ("email_verified", True),
])
def test_every_bad_correction_is_named(portal: LiveServer, field: str, value: object) -> None:
    p = register(portal)
    r = p.client.patch("/me", json={field: value, **({"current_password": PASSWORD} if field == "password" else {})})
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_consent_is_separate_default_off_and_has_a_history(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    got = p.get("/me/consent").json()
    assert got["current"] == {"notifications": False, "analytics": False, "marketing": False}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.sismember(keys.NOTIFY_OPTOUT, f"account:{p.id}")
    r = p.client.put("/me/consent", json={"notifications": True, "analytics": True, "marketing": False})
    assert r.json()["current"] == {"notifications": True, "analytics": True, "marketing": False}
    assert not client.sismember(keys.NOTIFY_OPTOUT, f"account:{p.id}")
    p.client.put("/me/consent", json={"notifications": False, "analytics": True, "marketing": False})
    assert client.sismember(keys.NOTIFY_OPTOUT, f"account:{p.id}")  # withdrawal: pending notices dropped
    history = p.get("/me/consent").json()["history"]
    assert [h["notifications"] for h in history] == [False, True, False]
    assert all(h["changed_at"] for h in history)
    assert error_of(p.client.put("/me/consent", json={"notifications": True})) == (422, "missing_field")
    assert error_of(p.client.put("/me/consent", json={"notifications": True, "analytics": True,
                                                       "marketing": "no"}))[0] == 422
    client.close()


def test_no_marketing_for_children(portal: LiveServer) -> None:
    """A child cannot hold an account at all (DPDP: a guardian registers and adds the child)."""
    for consent in ({"marketing": True}, {"marketing": False}):
        email, _ = unique_contacts()
        r = portal.client().post("/accounts", json={**GOOD, "email": email, "date_of_birth": "2015-06-01",
                                                    "consent": consent})
        assert error_of(r) == (422, "minor") and "date_of_birth" in r.json()["error"]["message"]


def test_linked_patients_need_consent_and_a_guardian_for_children(portal: LiveServer, redis_url: str) -> None:
    p = register(portal)
    assert verify(p, "email", codes_sent(redis_url, p.email)[0]).status_code == 200  # the guardian's verified contact
    me = add_patient(p, name="Ravi Kumar", relation="self", date_of_birth="1988-02-03", gender="male",
                     blood_group="O+")
    assert me["age"] >= 38 and me["blood_group"] == "O+" and me["minor"] is False
    assert error_of(p.post("/me/patients", json={"name": "Me again", "relation": "self", "age": 30})) == (
        409, "self_exists")
    r = p.post("/me/patients", json={"name": "Meena Kumar", "relation": "spouse", "age": 35})
    assert error_of(r) == (422, "consent_required") and "consent_confirmed" in r.json()["error"]["message"]
    spouse = add_patient(p, name="Meena Kumar", relation="spouse", age=35, consent_confirmed=True)
    assert spouse["consent_at"] and spouse["guardian"] is False
    r = p.post("/me/patients", json={"name": "Anu Kumar", "relation": "child", "age": 7, "consent_confirmed": True})
    assert error_of(r) == (422, "guardian_required") and "guardian" in r.json()["error"]["message"]
    child = add_patient(p, name="Anu Kumar", relation="child", date_of_birth="2019-05-05", consent_confirmed=True,
                        guardian=True, blood_group="AB-")
    assert child["minor"] is True and child["guardian_at"] and child["consent_at"]
    assert [x["name"] for x in p.get("/me/patients").json()["patients"]] == ["Ravi Kumar", "Meena Kumar", "Anu Kumar"]
    fixed = p.client.patch(f"/me/patients/{child['id']}", json={"name": "Anu K.", "blood_group": "AB+"}).json()
    assert (fixed["name"], fixed["blood_group"], fixed["guardian_at"]) == ("Anu K.", "AB+", child["guardian_at"])
    r = p.client.patch(f"/me/patients/{child['id']}", json={"guardian": False})
    assert error_of(r) == (422, "guardian_required")
    aged = p.client.patch(f"/me/patients/{child['id']}", json={"age": 8}).json()
    assert (aged["age"], aged["date_of_birth"]) == (8, None)
    assert p.client.delete(f"/me/patients/{spouse['id']}").status_code == 204
    assert error_of(p.client.delete(f"/me/patients/{spouse['id']}")) == (404, "not_found")
    other = register(portal)
    assert error_of(other.client.patch(f"/me/patients/{child['id']}", json={"name": "Stolen"})) == (404, "not_found")


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""), ("age", -1), ("age", 131), ("age", "7"), ("date_of_birth", "2020-02-31"),
    ("gender", "x"), ("blood_group", "C+"), ("blood_group", "o+"), ("relation", "cousin"),
    ("consent_confirmed", "yes"), ("guardian", 1), ("nickname", "A"),
])
def test_every_bad_patient_field_is_named(portal: LiveServer, field: str, value: object) -> None:
    p = register(portal)
    body = {"name": "Anu", "relation": "other", "age": 30, "consent_confirmed": True, field: value}
    r = p.post("/me/patients", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_an_age_or_a_date_of_birth_is_required(portal: LiveServer) -> None:
    p = register(portal)
    r = p.post("/me/patients", json={"name": "Anu", "relation": "self"})
    assert error_of(r) == (422, "missing_field") and "age" in r.json()["error"]["message"]


def test_bad_json_is_400_and_logout_ends_the_session(portal: LiveServer) -> None:
    p = register(portal)
    r = p.client.post("/me/patients", content=b"{not json", headers={"Content-Type": "application/json"})
    assert error_of(r) == (400, "bad_json")
    assert p.post("/auth/account-logout", json={}).status_code == 200
    assert error_of(p.get("/me")) == (401, "not_authenticated")


def test_the_privacy_contact_is_public(portal: LiveServer) -> None:
    info = portal.client().get("/privacy").json()
    assert "grievance@clinic.example" in info["grievance_contact"] and info["walkin_contact_days"] == 30
    page = httpx.get(f"{portal.url}/privacy")
    assert page.status_code == 200 and "grievance@clinic.example" in page.text
    portal_page = httpx.get(f"{portal.url}/account")
    assert portal_page.status_code == 200 and "grievance@clinic.example" in portal_page.text
