"""The staff audit log: one entry per change, read by admins at ``GET /api/v1/audit``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qtraq_live.record import audit
from tests.support_http import LiveServer, app_server, error_of  # noqa: F401


@pytest.fixture
def desk(app_server: LiveServer) -> httpx.Client:
    app_server.clinic("c1", ("gp", "eye"))
    return app_server.staff("reception")


def _entries(server: LiveServer, admin: httpx.Client, **params: Any) -> dict[str, Any]:
    server.run(audit.copy(server.app.state.redis, server.app.state.store))  # the duties process's job
    r = admin.get("/audit", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_replayed_press_and_a_second_pause_write_no_second_entry(app_server: LiveServer, desk: httpx.Client) -> None:
    desk.post("/queues/gp/tickets", json={})
    key = {"Idempotency-Key": "press-1"}
    first = desk.post("/queues/gp/next", json={"counter": "1"}, headers=key).json()
    assert desk.post("/queues/gp/next", json={"counter": "1"}, headers=key).json() == first  # the replay
    assert desk.post("/queues/eye/pause").status_code == 200
    assert desk.post("/queues/eye/pause").status_code == 200  # already paused: nothing changes
    assert desk.post("/queues/eye/resume").status_code == 200
    assert desk.post("/queues/eye/resume").status_code == 200
    admin = app_server.staff("admin")
    actions = [(e["action"], e["target"]) for e in _entries(app_server, admin, action="queue.")["entries"]]
    assert actions == [("queue.resume", "queue:eye"), ("queue.pause", "queue:eye"), ("queue.next", "queue:gp")]


def test_admins_filter_and_page_the_log_newest_first(app_server: LiveServer, desk: httpx.Client) -> None:
    ids = [desk.post("/queues/gp/tickets", json={}).json()["ticket"]["id"] for _ in range(3)]
    other = app_server.staff("reception")
    other.post("/queues/eye/tickets", json={})
    uid = desk.get("/auth/me").json()["user"]["id"]
    admin = app_server.staff("admin")
    mine = _entries(app_server, admin, actor=f"user:{uid}", action="ticket.issue")
    assert [e["target"] for e in mine["entries"]] == [f"ticket:{i}" for i in reversed(ids)]
    assert set(mine["entries"][0]) >= {"at", "actor", "action", "target", "ip"}
    assert mine["next_before"] is None
    page1 = _entries(app_server, admin, action="ticket.issue", limit=2)
    page2 = _entries(app_server, admin, action="ticket.issue", limit=2, before=page1["next_before"])
    assert len(page1["entries"]) == 2 and page2["next_before"] is None
    assert [e["target"] for e in page1["entries"] + page2["entries"]] == [
        e["target"] for e in _entries(app_server, admin, action="ticket.issue")["entries"]]
    day = mine["entries"][0]["at"][:10]
    assert len(_entries(app_server, admin, **{"from": day, "to": day}, action="ticket.issue")["entries"]) == 4
    assert _entries(app_server, admin, **{"from": "2020-01-01", "to": "2020-01-02"})["entries"] == []
    assert _entries(app_server, admin, **{"from": f"{day}T00:00:00Z", "to": f"{day}T00:00:01Z"},
                    actor="user:999")["entries"] == []


@pytest.mark.parametrize("params, field", [
    ({"from": "yesterday"}, "from"), ({"to": "2026-13-40"}, "to"), ({"from": "2026-12-02", "to": "2026-12-01"}, "to"),
    ({"actor": "Asha Rao"}, "actor"), ({"action": "<script>"}, "action"), ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"), ({"before": "-1"}, "before"), ({"sort": "asc"}, "sort"),
])
def test_bad_parameters_are_refused_by_name(app_server: LiveServer, params: dict[str, str], field: str) -> None:
    r = app_server.staff("admin").get("/audit", params=params)
    assert error_of(r) == (422, "invalid_field") and field in r.json()["error"]["message"]


def test_only_admins_read_the_log(app_server: LiveServer, desk: httpx.Client) -> None:
    assert error_of(desk.get("/audit")) == (403, "forbidden")
    assert error_of(app_server.client().get("/audit")) == (401, "not_authenticated")
