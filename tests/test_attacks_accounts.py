"""Attacks on the patient accounts, each reproduced against a running server (issue #21):
text bombing through contact changes (1), ids reused after erasure (4), HTML injection into
clinic emails (6), account discovery and contact squatting (7). docs/security.md maps each to
its test here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from email.message import Message

import httpx
import redis

from qtraq_live.runtime.duties import Context
from tests.support_accounts import (PASSWORD, Patient, codes_sent, live_portal, notice_requests,  # noqa: F401
                                    off_loop, portal, register, unique_contacts, verify)
from tests.support_http import LiveServer, error_of
from tests.support_notify import (SmtpServer, Workers, await_until, notifier, notify_env, sink,  # noqa: F401
                                  smtp, workers)

PARALLEL = 20


def _mobile_changes(p: Patient, numbers: list[str]) -> list[int]:
    return [p.client.patch("/me", json={"mobile": n}).status_code for n in numbers]


def test_alternating_contact_changes_send_one_code_per_number_and_are_capped(portal: LiveServer,
                                                                             redis_url: str) -> None:
    p = register(portal)
    _, victim_a = unique_contacts()
    _, victim_b = unique_contacts()
    statuses = _mobile_changes(p, [victim_a, victim_b] * 10)  # 20 changes in a fraction of a second
    assert len(codes_sent(redis_url, victim_a)) == 1 and len(codes_sent(redis_url, victim_b)) == 1
    assert statuses[:10] == [200] * 10 and set(statuses[10:]) == {429}  # contact changes per account
    # a fresh account cannot restart the count: the limit belongs to the number itself
    other = register(portal)
    assert other.client.patch("/me", json={"mobile": victim_a}).status_code == 200
    assert other.post("/accounts/verify/resend", json={"channel": "mobile"}).status_code == 429
    assert len(codes_sent(redis_url, victim_a)) == 1


def test_racing_accounts_and_registrations_send_one_code_to_a_number(portal: LiveServer, redis_url: str) -> None:
    _, victim = unique_contacts()
    accounts = [register(portal) for _ in range(4)]

    def change(p: Patient) -> int:
        return p.client.patch("/me", json={"mobile": victim}).status_code

    def sign_up(i: int) -> int:
        email, _ = unique_contacts()
        body = {"name": "Bomber", "email": email, "mobile": victim, "password": PASSWORD}
        return portal.client().post("/accounts", json=body).status_code

    with ThreadPoolExecutor(PARALLEL) as pool:
        changed = list(pool.map(change, accounts * 3))
        signed = list(pool.map(sign_up, range(8)))
    assert set(changed) <= {200, 429} and set(signed) == {201}
    assert len(codes_sent(redis_url, victim)) == 1


def test_an_erased_account_s_id_is_never_given_again(portal: LiveServer, redis_url: str) -> None:
    first = register(portal)
    second = register(portal)  # the highest id: SQLite would hand it out again after deletion
    assert second.client.delete("/me").status_code == 204
    third = register(portal)
    assert third.id > second.id > first.id
    patient = third.post("/me/patients", json={"name": "Asha", "relation": "self", "age": 30}).json()
    assert third.client.delete(f"/me/patients/{patient['id']}").status_code == 204
    again = third.post("/me/patients", json={"name": "Asha", "relation": "self", "age": 30}).json()
    assert again["id"] > patient["id"]
    exported = third.get("/me/export").json()
    assert [n["kind"] for n in exported["notices"]] == []  # nothing of the erased account's notices


def _answer_shape(r: httpx.Response) -> tuple[int, list[str], list[str]]:
    body = r.json()
    return r.status_code, sorted(body), sorted(body.get("account", body))


def test_registration_and_profile_answer_alike_whether_or_not_a_contact_is_taken(portal: LiveServer,
                                                                                  redis_url: str) -> None:
    owner = register(portal)
    assert verify(owner, "mobile", codes_sent(redis_url, owner.mobile)[0]).status_code == 200
    fresh_email, fresh_mobile = unique_contacts()
    other_email, _ = unique_contacts()
    free = portal.client().post("/accounts", json={"name": "Probe", "email": fresh_email, "mobile": fresh_mobile,
                                                   "password": PASSWORD})
    taken = portal.client().post("/accounts", json={"name": "Probe", "email": other_email, "mobile": owner.mobile,
                                                    "password": PASSWORD})
    assert _answer_shape(free) == _answer_shape(taken)
    assert taken.json()["account"]["mobile"] == owner.mobile and not taken.json()["account"]["mobile_verified"]
    # the owner hears of it instead of the prober getting a code for the owner's number
    assert len(codes_sent(redis_url, owner.mobile)) == 1
    assert [r["kind"] for r in notice_requests(redis_url) if r["to"] == owner.mobile][-1] == "contact_in_use"
    prober = register(portal)
    for value in (owner.mobile, unique_contacts()[1]):
        r = prober.client.patch("/me", json={"mobile": value})
        assert r.status_code == 200 and r.json()["mobile"] == value
    assert portal.client().post("/auth/account-login", json={"mobile": owner.mobile,
                                                             "password": PASSWORD}).json()["account"]["id"] == owner.id


def test_the_real_owner_takes_a_number_back_from_an_unverified_claim(portal: LiveServer, redis_url: str) -> None:
    squatter = register(portal)  # registers the victim's number first and never verifies it
    victim_email, _ = unique_contacts()
    c = portal.client()
    r = c.post("/accounts", json={"name": "Real Owner", "email": victim_email, "mobile": squatter.mobile,
                                  "password": PASSWORD})
    assert r.status_code == 201
    owner = Patient(c, r.json()["account"]["id"], victim_email, squatter.mobile)
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    minute = redis.Redis.from_url(redis_url)
    minute.delete(*minute.keys("qt:rl:code-dest-minute:*"))  # a minute later, the owner asks for a code
    minute.close()
    assert owner.post("/accounts/verify/resend", json={"channel": "mobile"}).status_code == 200
    code = codes_sent(redis_url, squatter.mobile)[-1]  # the code went to the number: its owner has it
    assert verify(owner, "mobile", code).json()["mobile_verified"] is True
    assert squatter.get("/me").json()["mobile"] is None
    login = portal.client().post("/auth/account-login", json={"mobile": squatter.mobile, "password": PASSWORD})
    assert login.json()["account"]["id"] == owner.id
    assert error_of(verify(squatter, "mobile", "123456"))[0] == 409  # nothing left to verify


async def test_a_name_with_html_arrives_as_text_in_the_welcome_email(live_portal: LiveServer, notifier: Context,
                                                                     workers: Workers, smtp: SmtpServer) -> None:
    workers.start(1)
    lure = '<a href="https://evil.example/verify">Click to verify</a>'
    p = await off_loop(register, live_portal, name=lure)

    def welcome() -> Message | None:
        return next((m for m in smtp.messages if m["To"] == p.email and "Welcome" in str(m["Subject"])), None)

    message: Message = await await_until(welcome, "the welcome email", timeout=30)
    parts = [(part.get_content_type(), part.get_payload(decode=True).decode()) for part in message.walk()
             if not part.is_multipart()]
    # plain text where no HTML is meant; and an HTML part, if a channel makes one, escapes the name
    assert parts and all(ctype == "text/plain" or (ctype == "text/html" and "&lt;a" in text and "<a " not in text)
                         for ctype, text in parts), parts
    assert any(lure in text or "&lt;a" in text for _, text in parts)
