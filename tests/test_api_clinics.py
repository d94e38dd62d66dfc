"""Clinics and queue definitions over HTTP: admins write, staff read."""

from __future__ import annotations

import pytest

from tests.support_http import LiveServer, app_server, error_of  # noqa: F401


def test_admin_creates_a_clinic_and_its_queues(app_server: LiveServer) -> None:
    admin = app_server.staff("admin")
    r = admin.post("/clinics", json={"id": "city", "name": "City Clinic", "timezone": "Asia/Kolkata",
                                     "mask_names": True})
    assert r.status_code == 201
    assert r.json() == {"id": "city", "name": "City Clinic", "timezone": "Asia/Kolkata", "mask_names": True,
                        "lang": "en", "languages": ["en", "hi"], "region": "IN"}
    r = admin.post("/clinics/city/queues", json={"id": "gp", "name": "Dr Rao", "prefix": "A", "self_checkin": True})
    assert r.status_code == 201
    queue = r.json()
    assert (queue["id"], queue["clinic"], queue["prefix"], queue["self_checkin"], queue["paused"]) == (
        "gp", "city", "A", True, False)
    assert queue["avg_service_s"] == 300 and queue["notify_ahead"] == 3
    got = app_server.staff("doctor").get("/clinics/city").json()
    assert got["name"] == "City Clinic" and got["version"] == 2
    assert [q["id"] for q in got["queues"]] == ["gp"]
    listed = admin.get("/clinics").json()["clinics"]
    assert [c["id"] for c in listed] == ["city"]
    with app_server.db() as db:
        actions = [tuple(r) for r in db.execute("SELECT action, target FROM audit_log WHERE action LIKE '%.create'")]
    assert actions == [("clinic.create", "clinic:city"), ("queue.create", "queue:gp")]


def test_admin_changes_definitions(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    admin = app_server.staff("admin")
    r = admin.patch("/clinics/c1", json={"name": "Renamed", "mask_names": True})
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["mask_names"] is True
    r = admin.patch("/queues/gp", json={"avg_service_s": 120, "self_checkin": True})
    assert r.status_code == 200 and r.json()["avg_service_s"] == 120 and r.json()["self_checkin"] is True
    assert error_of(admin.patch("/queues/gp", json={"clinic": "c2"})) == (422, "unknown_field")
    assert error_of(app_server.staff("reception").patch("/queues/gp", json={"name": "X"})) == (403, "forbidden")
    assert error_of(admin.patch("/queues/nope", json={"name": "X"})) == (404, "not_found")


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"id": "Bad Id", "name": "X"}, 422, "invalid_field", "id"),
    ({"id": "c9", "name": ""}, 422, "invalid_field", "name"),
    ({"id": "c9", "name": "X", "timezone": "Mars/Olympus"}, 422, "invalid_field", "timezone"),
    ({"id": "c9", "name": "X", "mask_names": "yes"}, 422, "invalid_field", "mask_names"),
    ({"id": "c9", "name": "X", "beds": 4}, 422, "unknown_field", "beds"),
    ({"name": "X"}, 422, "missing_field", "id"),
    ({"id": "c1", "name": "Again"}, 409, "already_exists", None),
])
def test_bad_clinics_are_refused_and_nothing_changes(app_server: LiveServer, body: dict[str, object],
                                                     status: int, code: str, field: str | None) -> None:
    app_server.clinic("c1", ("gp",))
    before = app_server.run(app_server.engine.version("c1"))
    r = app_server.staff("admin").post("/clinics", json=body)
    assert error_of(r) == (status, code)
    if field:
        assert r.json()["error"]["message"].startswith(f"{field}: ")
    assert app_server.run(app_server.engine.clinic_ids()) == ["c1"]
    assert app_server.run(app_server.engine.version("c1")) == before


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/clinics/c1/queues", {"id": "eye", "name": "Eye", "prefix": "a"}, 422, "invalid_field"),
    ("/clinics/c1/queues", {"id": "eye", "name": "Eye", "prefix": "E", "avg_service_s": 5}, 422, "invalid_field"),
    ("/clinics/c1/queues", {"id": "eye", "name": "Eye", "prefix": "E", "self_checkin": 1}, 422, "invalid_field"),
    ("/clinics/c1/queues", {"id": "gp", "name": "Again", "prefix": "G"}, 409, "already_exists"),
    ("/clinics/none/queues", {"id": "eye", "name": "Eye", "prefix": "E"}, 404, "not_found"),
])
def test_bad_queues_are_refused_and_nothing_changes(app_server: LiveServer, path: str, body: dict[str, object],
                                                    status: int, code: str) -> None:
    app_server.clinic("c1", ("gp",))
    before = app_server.run(app_server.engine.version("c1"))
    assert error_of(app_server.staff("admin").post(path, json=body)) == (status, code)
    assert app_server.run(app_server.engine.version("c1")) == before
    assert app_server.run(app_server.engine.get_queue("eye")) is None


def test_unknown_clinic_is_404(app_server: LiveServer) -> None:
    assert error_of(app_server.staff("reception").get("/clinics/nowhere")) == (404, "not_found")
