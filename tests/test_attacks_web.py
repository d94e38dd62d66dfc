"""Attacks on the web layer, each reproduced against a running server (issue #21): login CSRF
with a cross-site ``text/plain`` form (3). docs/security.md maps each to its test here.
"""

from __future__ import annotations

import json

import pytest

from tests.support_accounts import PASSWORD as ACCOUNT_PASSWORD
from tests.support_accounts import portal, register  # noqa: F401
from tests.support_http import PASSWORD, LiveServer, error_of

EVIL = "https://evil.example"


def _form_body(fields: dict[str, str]) -> bytes:
    """What ``<form enctype="text/plain">`` with one input named ``{"email":…,"x":"`` and value
    ``"}`` sends: a body that parses as JSON, under a type no CORS preflight guards."""
    return (json.dumps(fields)[:-1] + ', "x": "=' + '"}').encode()


def test_a_cross_site_text_plain_form_cannot_log_the_victim_in(portal: LiveServer) -> None:
    attacker = register(portal)
    body = _form_body({"email": attacker.email, "password": ACCOUNT_PASSWORD})
    victim = portal.client()
    r = victim.post("/auth/account-login", content=body, headers={"Content-Type": "text/plain",
                                                                  "Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    # each guard holds alone: the type, the Origin, the fetch metadata
    alone = [{"Content-Type": "text/plain"},
             {"Content-Type": "application/json", "Origin": EVIL},
             {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}]
    answers = [victim.post("/auth/account-login", content=json.dumps({"email": attacker.email,
                                                                       "password": ACCOUNT_PASSWORD}),
                           headers=h) for h in alone]
    assert [error_of(a) for a in answers] == [(415, "unsupported_media_type"), (403, "origin_not_allowed"),
                                              (403, "origin_not_allowed")]
    assert all("set-cookie" not in a.headers for a in answers)
    same_site = victim.post("/auth/account-login", json={"email": attacker.email, "password": ACCOUNT_PASSWORD},
                            headers={"Origin": portal.url, "Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 200  # our own page still logs in


@pytest.mark.parametrize("path", ["/auth/login", "/accounts", "/auth/account-login"])
def test_login_and_registration_refuse_cross_site_requests(portal: LiveServer, path: str) -> None:
    name = portal.add_user("admin")
    body = {"username": name, "password": PASSWORD} if path == "/auth/login" else \
        {"name": "Evil Twin", "email": "twin@evil.example", "password": ACCOUNT_PASSWORD}
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        r = portal.client().post(path, json=body, headers=headers)
        assert error_of(r) == (403, "origin_not_allowed") and "set-cookie" not in r.headers
    with portal.db() as db:
        assert db.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0


def test_json_endpoints_refuse_other_content_types(portal: LiveServer) -> None:
    portal.clinic("c2", ("q2",))
    desk = portal.bearer("reception")
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = desk.post("/queues/q2/tickets", content=b'{"name": "A"}', headers={"Content-Type": ctype})
        assert error_of(r) == (415, "unsupported_media_type")
    ok = desk.post("/queues/q2/tickets", content=b'{"name": "A"}',
                   headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 201
