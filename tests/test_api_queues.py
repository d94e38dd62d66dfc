"""Issuing, the "next" press, snapshots, pause and resume over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from tests.support_http import LiveServer, StartServer, app_server, error_of, start_server  # noqa: F401


@pytest.fixture
def desk(app_server: LiveServer) -> httpx.Client:
    """Clinic c1 with queues gp and eye; a reception client."""
    app_server.clinic("c1", ("gp", "eye"))
    return app_server.staff("reception")


def _issue(c: httpx.Client, queue: str = "gp", **body: object) -> dict[str, Any]:
    r = c.post(f"/queues/{queue}/tickets", json=body)
    assert r.status_code == 201, r.text
    ticket: dict[str, Any] = r.json()["ticket"]
    return ticket


def _status_of(server: LiveServer, ticket_id: int) -> str:
    ticket = server.run(server.engine.ticket(ticket_id))
    assert ticket is not None
    return str(ticket["status"])


def _version(server: LiveServer) -> int:
    return server.run(server.engine.version("c1"))


def test_issue_returns_the_ticket_with_its_token_and_tracking_url(app_server: LiveServer,
                                                                  desk: httpx.Client) -> None:
    r = desk.post("/queues/gp/tickets", json={"name": "Asha Rao", "priority": 1})
    assert r.status_code == 201
    body = r.json()
    ticket = body["ticket"]
    assert (ticket["label"], ticket["status"], ticket["priority"], ticket["position"], ticket["name"]) == (
        "A-001", "waiting", 1, 1, "Asha Rao")
    assert len(ticket["token"]) >= 22
    assert body["track_url"] == f"{app_server.url}/t/{ticket['token']}"
    # The token is shown once: no other staff answer carries it.
    others = [desk.get("/queues/gp").text, desk.get(f"/tickets/{ticket['id']}").text,
              desk.post("/queues/gp/next").text, desk.get("/clinics/c1").text]
    assert all(ticket["token"] not in text and '"token"' not in text for text in others)
    assert _issue(desk, "eye")["label"] == "B-001"


def test_contacts_go_to_sqlite_only(app_server: LiveServer, desk: httpx.Client, sync_redis: redis.Redis) -> None:
    ticket = _issue(desk, name="Asha", mobile="+919812345678", email="asha@example.in", notify=True, lang="hi")
    with app_server.db() as db:
        row = db.execute("SELECT * FROM ticket_contacts WHERE ticket_id = ?", (ticket["id"],)).fetchone()
    assert (row["mobile"], row["email"]) == ("+919812345678", "asha@example.in")
    everything = json.dumps({key: _value(sync_redis, key) for key in sync_redis.keys("*")})
    assert "qt:t:%d" % ticket["id"] in everything
    assert "9812345678" not in everything and "asha@example.in" not in everything


def _value(r: redis.Redis, key: Any) -> object:
    """Any key's value, whatever its type."""
    readers: dict[Any, Callable[[Any], Any]] = {
        "string": r.get, "hash": r.hgetall, "list": lambda k: r.lrange(k, 0, -1), "set": r.smembers,
        "zset": lambda k: r.zrange(k, 0, -1), "stream": r.xrange}
    value = readers[r.type(key)](key)
    return sorted(value) if isinstance(value, set) else value


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"mobile": "98123 456"}, 422, "invalid_field", "mobile"),
    ({"email": "not-an-email"}, 422, "invalid_field", "email"),
    ({"notify": True}, 422, "invalid_field", "notify"),
    ({"priority": 2}, 422, "invalid_field", "priority"),
    ({"priority": True}, 422, "invalid_field", "priority"),
    ({"name": "x" * 81}, 422, "invalid_field", "name"),
    ({"name": "   ", "mobile": "+919812345678"}, 422, "invalid_field", "name"),  # fails in the engine
    ({"ward": 3}, 422, "unknown_field", "ward"),
])
def test_bad_issues_write_nothing(app_server: LiveServer, desk: httpx.Client, body: dict[str, object],
                                  status: int, code: str, field: str) -> None:
    before = _version(app_server)
    r = desk.post("/queues/gp/tickets", json=body)
    assert error_of(r) == (status, code)
    assert r.json()["error"]["message"].startswith(f"{field}: ")
    assert _version(app_server) == before
    with app_server.db() as db:
        assert db.execute("SELECT COUNT(*) FROM ticket_contacts").fetchone()[0] == 0
    assert app_server.run(app_server.engine.queue_snapshot("gp"))["waiting"] == []


def test_issue_on_an_unknown_queue_is_404_and_keeps_no_contact(app_server: LiveServer, desk: httpx.Client) -> None:
    r = desk.post("/queues/nope/tickets", json={"mobile": "+919812345678"})
    assert error_of(r) == (404, "not_found")
    with app_server.db() as db:
        assert db.execute("SELECT COUNT(*) FROM ticket_contacts").fetchone()[0] == 0


def test_bad_json_is_400_and_non_objects_are_422(desk: httpx.Client) -> None:
    headers = {"Content-Type": "application/json"}
    assert error_of(desk.post("/queues/gp/tickets", content=b"{name:", headers=headers)) == (400, "bad_json")
    assert error_of(desk.post("/queues/gp/tickets", content=b"\xff\xfe", headers=headers)) == (400, "bad_json")
    assert error_of(desk.post("/queues/gp/tickets", json=["a"])) == (422, "invalid_body")


def test_next_finishes_the_counters_patient_and_calls_the_next(app_server: LiveServer, desk: httpx.Client) -> None:
    a, b, c = (_issue(desk) for _ in range(3))
    first = desk.post("/queues/gp/next", json={"counter": "1"}).json()["called"]
    second = desk.post("/queues/gp/next", json={"counter": "Room 2"}).json()["called"]
    assert (first["id"], first["status"], first["counter"]) == (a["id"], "called", "1")
    assert (second["id"], second["counter"]) == (b["id"], "Room 2")
    third = desk.post("/queues/gp/next").json()["called"]  # counter defaults to "1"
    assert third["id"] == c["id"]
    assert _status_of(app_server, a["id"]) == "done"
    assert _status_of(app_server, b["id"]) == "called"
    desk.post("/queues/gp/next", json={"counter": "Room 2"})  # finishes b, nobody left
    before = _version(app_server)
    assert desk.post("/queues/gp/next", json={"counter": "Room 2"}).json() == {"called": None}
    assert _version(app_server) == before  # a press that changes nothing bumps nothing


def test_idempotency_key_makes_a_retried_press_call_one_patient(app_server: LiveServer, desk: httpx.Client) -> None:
    a, b = _issue(desk), _issue(desk)
    before = _version(app_server)
    first = desk.post("/queues/gp/next", headers={"Idempotency-Key": "press-7f3a"})
    retry = desk.post("/queues/gp/next", headers={"Idempotency-Key": "press-7f3a"})
    assert first.status_code == retry.status_code == 200
    assert first.json()["called"]["id"] == retry.json()["called"]["id"] == a["id"]
    assert _version(app_server) == before + 1
    assert _status_of(app_server, b["id"]) == "waiting"
    assert error_of(desk.post("/queues/gp/next", headers={"Idempotency-Key": "k" * 129})) == (422, "invalid_field")


def test_two_counters_pressing_at_once_call_two_patients(app_server: LiveServer, desk: httpx.Client) -> None:
    issued = {_issue(desk)["id"] for _ in range(2)}
    other = app_server.staff("doctor", ("gp",))
    start = threading.Barrier(2)
    called: dict[str, int] = {}

    def press(client: httpx.Client, counter: str) -> None:
        start.wait(5)
        r = client.post("/queues/gp/next", json={"counter": counter})
        called[counter] = r.json()["called"]["id"]

    threads = [threading.Thread(target=press, args=(c, n)) for c, n in ((desk, "1"), (other, "2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert set(called.values()) == issued


def test_doctor_presses_only_on_their_own_queues(app_server: LiveServer, desk: httpx.Client) -> None:
    _issue(desk, "gp"), _issue(desk, "eye")
    doctor = app_server.staff("doctor", ("gp",))
    assert doctor.post("/queues/gp/next", json={"counter": "Dr Rao"}).json()["called"]["label"] == "A-001"
    before = _version(app_server)
    assert error_of(doctor.post("/queues/eye/next")) == (403, "forbidden")
    assert _version(app_server) == before
    assert doctor.get("/queues/eye").status_code == 403  # a doctor reads only their own queues (#21 item 11)


@pytest.mark.parametrize(("body", "code"), [
    ({"counter": ""}, "invalid_field"), ({"counter": "x" * 33}, "invalid_field"),
    ({"counter": 2}, "invalid_field"), ({"desk": "1"}, "unknown_field"),
])
def test_next_body_is_validated(desk: httpx.Client, body: dict[str, object], code: str) -> None:
    assert error_of(desk.post("/queues/gp/next", json=body)) == (422, code)


def test_pause_blocks_next_until_resume(app_server: LiveServer, desk: httpx.Client) -> None:
    _issue(desk)
    r = desk.post("/queues/gp/pause")
    assert r.status_code == 200 and r.json()["queue"]["paused"] is True
    assert desk.get("/queues/gp").json()["paused"] is True
    before = _version(app_server)
    assert error_of(desk.post("/queues/gp/next")) == (409, "queue_paused")
    assert _version(app_server) == before
    assert desk.post("/queues/gp/resume").json()["queue"]["paused"] is False
    assert desk.post("/queues/gp/next").json()["called"]["label"] == "A-001"
    assert error_of(desk.post("/queues/nope/pause")) == (404, "not_found")
    assert error_of(desk.post("/queues/gp/pause", json={"why": "lunch"})) == (422, "unknown_field")


def test_snapshot(app_server: LiveServer, desk: httpx.Client) -> None:
    a, b = _issue(desk, name="Asha"), _issue(desk, priority=1)
    desk.post("/queues/gp/next", json={"counter": "3"})  # b is urgent: called first
    snap = desk.get("/queues/gp").json()
    assert set(snap) == {"version", "paused", "now_serving", "waiting"}
    assert snap["version"] == _version(app_server)
    assert [t["id"] for t in snap["now_serving"]] == [b["id"]]
    assert [(t["id"], t["position"], t["ahead"]) for t in snap["waiting"]] == [(a["id"], 1, 0)]
    assert error_of(desk.get("/queues/nope")) == (404, "not_found")
    assert error_of(app_server.client().get("/queues/gp")) == (401, "not_authenticated")


def test_track_url_uses_the_public_url(start_server: StartServer) -> None:
    live = start_server(server__public_url="https://queue.example.in/")
    live.clinic("c1", ("gp",))
    r = live.bearer("reception").post("/queues/gp/tickets", json={})
    assert r.json()["track_url"] == "https://queue.example.in/t/" + r.json()["ticket"]["token"]
