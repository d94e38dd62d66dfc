"""What patients reach without logging in: self check-in and their own ticket by token."""

from __future__ import annotations

import httpx
import pytest

from tests.support_http import LiveServer, StartServer, error_of, start_server  # noqa: F401

PUBLIC_KEYS = {"label", "status", "position", "ahead", "eta_s", "eta_low_s", "eta_high_s", "counter", "queue", "clinic",
               "version"}


@pytest.fixture
def server(start_server: StartServer) -> LiveServer:
    """Small rate limits so the limits themselves can be tested quickly."""
    live = start_server(security__join_rate_limit=3, security__track_rate_limit=8)
    live.clinic("c1", ("gp",), self_checkin=True)
    live.clinic("c2", ("desk",))
    return live


def test_self_check_in_issues_a_ticket(server: LiveServer) -> None:
    r = server.client().post("/public/queues/gp/join", json={"name": "Asha Rao", "mobile": "+919812345678"})
    assert r.status_code == 201
    ticket = r.json()["ticket"]
    assert (ticket["label"], ticket["status"], ticket["priority"]) == ("A-001", "waiting", 0)
    assert r.json()["track_url"] == f"{server.url}/t/{ticket['token']}"
    with server.db() as db:
        assert db.execute("SELECT mobile FROM ticket_contacts WHERE ticket_id = ?",
                          (ticket["id"],)).fetchone()[0] == "+919812345678"
        assert db.execute("SELECT actor FROM audit_log").fetchall() == []  # no staff write happened


def test_self_check_in_only_where_allowed_and_without_priority(server: LiveServer) -> None:
    patient = server.client()
    assert error_of(patient.post("/public/queues/desk/join", json={})) == (404, "not_found")
    assert error_of(patient.post("/public/queues/nowhere/join", json={})) == (404, "not_found")
    r = patient.post("/public/queues/gp/join", json={"priority": 1})
    assert error_of(r) == (422, "unknown_field") and r.json()["error"]["message"].startswith("priority: ")
    assert server.run(server.engine.version("c2")) == 2  # clinic + queue, nothing since


def test_self_check_in_is_rate_limited_per_address(server: LiveServer) -> None:
    patient = server.client()
    for _ in range(3):
        assert patient.post("/public/queues/gp/join", json={}).status_code == 201
    r = patient.post("/public/queues/gp/join", json={})
    assert error_of(r) == (429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 600
    assert len(server.run(server.engine.queue_snapshot("gp"))["waiting"]) == 3


def test_token_holder_sees_only_public_fields(server: LiveServer) -> None:
    desk = server.bearer("reception")
    first = desk.post("/queues/gp/tickets", json={"name": "Ramesh Kumar"}).json()["ticket"]
    mine = desk.post("/queues/gp/tickets", json={"name": "Asha Rao"}).json()["ticket"]
    r = server.client().get(f"/t/{mine['token']}")
    assert r.status_code == 200
    view = r.json()
    assert set(view) == PUBLIC_KEYS
    assert view == {"label": "A-002", "status": "waiting", "position": 2, "ahead": 1, "eta_s": view["eta_s"],
                    "eta_low_s": view["eta_low_s"], "eta_high_s": view["eta_high_s"], "counter": None, "queue": {"name": "Queue gp"}, "clinic": {"name": "Clinic c1"},
                    "version": server.run(server.engine.version("c1"))}
    assert 0 < view["eta_low_s"] < view["eta_s"] < view["eta_high_s"]
    for secret in ("Ramesh", "Asha", first["token"], mine["token"], '"id"'):
        assert secret not in r.text
    desk.post("/queues/gp/next", json={"counter": "Room 4"})
    desk.post("/queues/gp/next", json={"counter": "Room 4"})
    called = server.client().get(f"/t/{mine['token']}").json()
    assert (called["status"], called["counter"], called["position"]) == ("called", "Room 4", None)


@pytest.mark.parametrize("token", ["x" * 32, "short", "A" * 200])
def test_unknown_tokens_are_404(server: LiveServer, token: str) -> None:
    patient = server.client()
    assert error_of(patient.get(f"/t/{token}")) == (404, "not_found")
    assert error_of(patient.delete(f"/t/{token}")) == (404, "not_found")


def test_patient_leaves_the_queue(server: LiveServer) -> None:
    token = server.client().post("/public/queues/gp/join", json={}).json()["ticket"]["token"]
    patient = server.client()
    r = patient.delete(f"/t/{token}")
    assert r.status_code == 200
    assert set(r.json()) == PUBLIC_KEYS and r.json()["status"] == "cancelled"
    assert error_of(patient.delete(f"/t/{token}")) == (409, "illegal_transition")
    with server.db() as db:
        assert [tuple(r) for r in db.execute("SELECT actor, action FROM audit_log")] == [
            ("patient", "ticket.cancel_by_patient")]


def test_tracking_is_rate_limited_per_address(server: LiveServer) -> None:
    token = server.client().post("/public/queues/gp/join", json={}).json()["ticket"]["token"]
    patient = server.client()
    codes = [patient.get(f"/t/{token}").status_code for _ in range(9)]
    assert codes == [200] * 8 + [429]
    assert "retry-after" in patient.get(f"/t/{token}").headers


def test_client_address_comes_from_trusted_proxies_only(start_server: StartServer) -> None:
    live = start_server(security__track_rate_limit=2, security__trusted_proxies=["127.0.0.1"])
    patient = live.client()
    # Two patients behind the proxy have their own limits; a forged hop in front is ignored.
    for ip in ("203.0.113.7", "203.0.113.8"):
        forwarded = {"X-Forwarded-For": f"10.9.9.9, {ip}"}
        codes = [patient.get("/t/" + "x" * 32, headers=forwarded).status_code for _ in range(3)]
        assert codes == [404, 404, 429]


def test_public_endpoints_need_no_login_but_staff_ones_do(server: LiveServer) -> None:
    anon = httpx.Client(base_url=server.api(""))
    try:
        assert anon.post("/public/queues/gp/join", json={}).status_code == 201
        assert error_of(anon.post("/queues/gp/tickets", json={})) == (401, "not_authenticated")
    finally:
        anon.close()
