"""One ticket's state changes over HTTP: legal ones answer the ticket, illegal ones 409."""

from __future__ import annotations

import httpx
import pytest

from tests.support_http import LiveServer, app_server, error_of  # noqa: F401


@pytest.fixture
def desk(app_server: LiveServer) -> httpx.Client:
    app_server.clinic("c1", ("gp", "eye"))
    app_server.clinic("c2", ("dental",))
    return app_server.staff("reception")


def _called(c: httpx.Client, queue: str = "gp", counter: str = "1") -> int:
    """Issue a ticket on ``queue`` and call it at ``counter``; its id."""
    ticket_id = c.post(f"/queues/{queue}/tickets", json={}).json()["ticket"]["id"]
    called = c.post(f"/queues/{queue}/next", json={"counter": counter}).json()["called"]
    assert called["id"] == ticket_id
    return int(ticket_id)


def _status(c: httpx.Client, ticket_id: int, action: str) -> tuple[int, str]:
    r = c.post(f"/tickets/{ticket_id}/{action}")
    return r.status_code, r.json()["ticket"]["status"] if r.status_code == 200 else r.json()["error"]["code"]


def test_the_lifecycle_of_a_visit(desk: httpx.Client) -> None:
    t = _called(desk)
    assert _status(desk, t, "recall") == (200, "called")
    assert desk.get(f"/tickets/{t}").json()["ticket"]["recalls"] == 1
    assert _status(desk, t, "serve") == (200, "serving")
    assert _status(desk, t, "done") == (200, "done")
    assert _status(desk, t, "cancel") == (409, "illegal_transition")


def test_skip_no_show_requeue_and_cancel(desk: httpx.Client) -> None:
    t = _called(desk)
    assert _status(desk, t, "skip") == (200, "skipped")
    assert _status(desk, t, "no-show") == (200, "no_show")
    assert _status(desk, t, "requeue") == (200, "waiting")
    assert desk.get(f"/tickets/{t}").json()["ticket"]["position"] == 1
    assert _status(desk, t, "cancel") == (200, "cancelled")
    assert _status(desk, t, "done") == (409, "illegal_transition")


def test_a_refused_change_writes_nothing(app_server: LiveServer, desk: httpx.Client) -> None:
    t = desk.post("/queues/gp/tickets", json={}).json()["ticket"]["id"]
    before = app_server.run(app_server.engine.version("c1"))
    for action in ("done", "skip", "no-show", "serve", "recall", "requeue"):
        assert _status(desk, t, action) == (409, "illegal_transition")  # a waiting ticket
    assert error_of(desk.post(f"/tickets/{t}/done", json={"note": "x"})) == (422, "unknown_field")
    assert app_server.run(app_server.engine.version("c1")) == before
    assert desk.get(f"/tickets/{t}").json()["ticket"]["status"] == "waiting"


def test_unknown_tickets_are_404(desk: httpx.Client) -> None:
    for path in ("/tickets/999999/done", "/tickets/abc/done", "/tickets/0/recall"):
        assert error_of(desk.post(path)) == (404, "not_found")
    assert error_of(desk.post("/tickets/999999/transfer", json={"queue": "eye"})) == (404, "not_found")
    assert error_of(desk.get("/tickets/999999")) == (404, "not_found")
    assert error_of(desk.post("/tickets/1/explode")) == (404, "not_found")


def test_transfer_keeps_the_place_by_arrival(app_server: LiveServer, desk: httpx.Client) -> None:
    early = desk.post("/queues/gp/tickets", json={}).json()["ticket"]
    desk.post("/queues/eye/tickets", json={})
    r = desk.post(f"/tickets/{early['id']}/transfer", json={"queue": "eye"})
    assert r.status_code == 200
    moved = r.json()["ticket"]
    assert (moved["queue"], moved["status"], moved["label"], moved["position"]) == ("eye", "waiting", "A-001", 1)
    before = app_server.run(app_server.engine.version("c1"))
    assert error_of(desk.post(f"/tickets/{early['id']}/transfer", json={"queue": "dental"})) == (422, "invalid_field")
    assert error_of(desk.post(f"/tickets/{early['id']}/transfer", json={"queue": "nowhere"})) == (404, "not_found")
    assert error_of(desk.post(f"/tickets/{early['id']}/transfer", json={})) == (422, "missing_field")
    assert error_of(desk.post(f"/tickets/{early['id']}/transfer", json={"queue": 5})) == (422, "invalid_field")
    assert app_server.run(app_server.engine.version("c1")) == before


def test_doctor_acts_only_on_their_queues_and_only_to_call_and_finish(app_server: LiveServer,
                                                                      desk: httpx.Client) -> None:
    doctor = app_server.staff("doctor", ("gp",))
    mine, theirs = _called(desk, "gp", "1"), _called(desk, "eye", "1")
    assert _status(doctor, mine, "recall") == (200, "called")
    assert _status(doctor, mine, "serve") == (200, "serving")
    assert _status(doctor, mine, "done") == (200, "done")
    other = _called(desk, "gp", "2")
    assert _status(doctor, other, "skip") == (200, "skipped")
    assert _status(doctor, other, "no-show") == (200, "no_show")
    for action in ("requeue", "cancel"):  # reception's decisions, even on the doctor's queue
        assert _status(doctor, other, action) == (403, "forbidden")
    assert error_of(doctor.post(f"/tickets/{other}/transfer", json={"queue": "eye"})) == (403, "forbidden")
    before = app_server.run(app_server.engine.version("c1"))
    for action in ("recall", "serve", "done", "skip"):
        assert _status(doctor, theirs, action) == (403, "forbidden")
    assert app_server.run(app_server.engine.version("c1")) == before
    assert error_of(doctor.post("/tickets/999999/done")) == (404, "not_found")


def test_anonymous_callers_are_refused(app_server: LiveServer, desk: httpx.Client) -> None:
    t = _called(desk)
    anon = app_server.client()
    assert error_of(anon.post(f"/tickets/{t}/done")) == (401, "not_authenticated")
    assert error_of(anon.get(f"/tickets/{t}")) == (401, "not_authenticated")


def test_every_staff_write_is_audited_by_id_only(app_server: LiveServer, desk: httpx.Client) -> None:
    issued = desk.post("/queues/gp/tickets", json={"name": "Asha Rao", "mobile": "+919812345678"}).json()["ticket"]
    desk.post("/queues/gp/next", json={"counter": "1"})
    desk.post(f"/tickets/{issued['id']}/done")
    desk.post("/queues/gp/tickets", json={})
    other = desk.post("/queues/gp/next").json()["called"]["id"]
    desk.post(f"/tickets/{other}/transfer", json={"queue": "eye"})
    desk.post("/queues/eye/pause")
    # refused changes leave no audit entry: the entry is written in the same step as the change
    assert error_of(desk.post(f"/tickets/{issued['id']}/done")) == (409, "illegal_transition")
    assert error_of(desk.post(f"/tickets/{issued['id']}/transfer", json={"queue": "eye"}))[0] == 409
    uid = desk.get("/auth/me").json()["user"]["id"]
    with app_server.db() as db:
        rows = [tuple(r) for r in db.execute("SELECT actor, action, target, ip FROM audit_log ORDER BY id")]
    assert [r[1:3] for r in rows] == [
        ("auth.login", f"user:{uid}"), ("ticket.issue", f"ticket:{issued['id']}"), ("queue.next", "queue:gp"),
        ("ticket.done", f"ticket:{issued['id']}"), ("ticket.issue", f"ticket:{other}"), ("queue.next", "queue:gp"),
        ("ticket.transfer", f"ticket:{other}"), ("queue.pause", "queue:eye")]
    assert {r[0] for r in rows} == {f"user:{uid}"} and {r[3] for r in rows} == {"127.0.0.1"}
    assert "Asha" not in repr(rows) and "9812345678" not in repr(rows)
