"""The Low items of issue #21, each against a running server: sessions (10), a doctor's reads (11),
path ids that are key names (13), private files (14), /metrics (15), the Host header (16), and
what a TV snapshot carries (18). (Complementary suppression, item 12: test_stats.py; lockouts
that slow the attacker, item 17: test_attacks_staff.py.)
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from qtraq_live.queue_engine import mask_name
from qtraq_live.record import access
from tests.support_accounts import PASSWORD as ACCOUNT_PASSWORD
from tests.support_accounts import portal, register  # noqa: F401
from tests.support_http import LiveServer, StartServer, app_server, error_of, start_server  # noqa: F401
from tests.support_hub import open_ws, recv, ws_url
from tests.support_serve import wait_until

NEW_PASSWORD = "another long passphrase"


def _login(live: LiveServer, email: str, password: str = ACCOUNT_PASSWORD) -> httpx.Client:
    c = live.client()
    r = c.post("/auth/account-login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def test_a_password_change_ends_other_sessions_and_each_session_can_be_ended(portal: LiveServer) -> None:
    p = register(portal)
    laptop, phone = _login(portal, p.email), _login(portal, p.email)
    listed = p.get("/me/sessions").json()["sessions"]
    assert [s["active"] for s in listed] == [True, True, True] and sum(s["current"] for s in listed) == 1
    lost_phone = next(s for s in phone.get("/me/sessions").json()["sessions"] if s["current"])
    assert laptop.delete(f"/me/sessions/{lost_phone['id']}").status_code == 204
    assert error_of(phone.get("/me")) == (401, "not_authenticated")
    assert error_of(laptop.delete(f"/me/sessions/{lost_phone['id']}"))[0] == 404
    assert laptop.patch("/me", json={"password": NEW_PASSWORD, "current_password": ACCOUNT_PASSWORD}).status_code == 200
    assert laptop.get("/me").status_code == 200  # the session that changed it stays
    assert error_of(p.get("/me")) == (401, "not_authenticated")  # every other one ended


def test_an_idle_session_ends(start_server: StartServer, sync_redis: redis.Redis) -> None:
    live = start_server(security__idle_minutes=1)
    desk = live.staff("reception")
    assert desk.get("/auth/me").status_code == 200
    for key in sync_redis.scan_iter(match="qt:sess:*"):  # as if the last use was two minutes ago
        sync_redis.hset(key, "seen", str(int(time.time()) - 120))
    sync_redis.publish("qt:credentials:changed", "test")  # and no process holds it cached
    # The server takes the announcement on its own task: a request may still meet the cached
    # session (its old "seen", so it ends nothing and touches nothing) until the drop lands, and
    # the cache's 5 s bound it. The first answer that is not the cached one must end the session.
    answers: list[httpx.Response] = []
    wait_until(lambda: answers.append(desk.get("/auth/me")) or answers[-1].status_code != 200, 10,
               "the session's end")
    assert error_of(answers[-1]) == (401, "not_authenticated")
    assert not list(sync_redis.scan_iter(match="qt:sess:*"))


def test_a_doctor_reads_only_their_own_queues(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp", "eye"))
    desk, doctor = app_server.staff("reception"), app_server.staff("doctor", ("gp",))
    other = desk.post("/queues/eye/tickets", json={"name": "Ravi Kumar"}).json()["ticket"]
    mine = desk.post("/queues/gp/tickets", json={"name": "Sita Devi"}).json()["ticket"]
    assert error_of(doctor.get("/queues/eye")) == (403, "forbidden")
    assert error_of(doctor.get(f"/tickets/{other['id']}")) == (403, "forbidden")
    assert doctor.get("/queues/gp").status_code == 200
    assert doctor.get(f"/tickets/{mine['id']}").json()["ticket"]["id"] == mine["id"]


@pytest.mark.parametrize("path", ["/join/gp:waiting", "/api/v1/public/queues/gp:waiting/join", "/display/c1:version",
                                  "/api/v1/queues/gp:waiting", "/api/v1/clinics/c1:queues",
                                  "/join/gp:waiting/qr"])
def test_path_ids_that_name_other_keys_are_unknown_not_errors(app_server: LiveServer, path: str) -> None:
    app_server.clinic("c1", ("gp",), self_checkin=True)
    admin = app_server.bearer("admin")
    method = "POST" if path.endswith("/join") else "GET"
    r = admin.request(method, app_server.url + path, json={} if method == "POST" else None)
    assert r.status_code in (401, 404), (path, r.status_code, r.text[:200])
    assert "Traceback" not in r.text and "WRONGTYPE" not in r.text


def test_the_data_dir_and_the_record_are_private(app_server: LiveServer) -> None:
    data = Path(app_server.settings.data_dir)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("qtraq.db", "qtraq.db-wal", "qtraq.db-shm"):
        if (data / name).exists():
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


def test_metrics_answer_only_the_token_or_the_monitoring_network(start_server: StartServer) -> None:
    open_to_all = start_server(security__metrics_networks=["10.9.8.0/24"], security__metrics_token="scrape-token-1234")
    assert error_of(httpx.get(f"{open_to_all.url}/metrics")) == (403, "forbidden")
    assert httpx.get(f"{open_to_all.url}/metrics", headers={"Authorization": "Bearer scrape-token-1234"}
                     ).status_code == 200
    local = start_server()  # default: the box itself (a Prometheus on the same host)
    assert httpx.get(f"{local.url}/metrics").status_code == 200
    # through a local proxy that was not declared trusted, the peer's address proves nothing
    assert httpx.get(f"{local.url}/metrics", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 403
    proxied = start_server(security__trusted_proxies=["127.0.0.1"])
    assert httpx.get(f"{proxied.url}/metrics", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 403


def test_links_and_qr_codes_never_follow_the_host_header(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",), self_checkin=True)
    desk = app_server.bearer("reception")
    forged = {"Host": "evil.example"}
    issued = desk.post("/queues/gp/tickets", json={}, headers=forged).json()
    assert issued["track_url"].startswith(app_server.url + "/t/"), issued["track_url"]
    joined = app_server.client().post("/public/queues/gp/join", json={}, headers=forged).json()
    assert "evil.example" not in joined["track_url"]
    poster = httpx.get(f"{app_server.url}/join/gp/qr", headers=forged)
    assert poster.status_code == 200 and "evil.example" not in poster.text
    key = app_server.bearer("admin").post("/admin/clinics/c1/display-keys", json={}, headers=forged).json()
    assert key["display_url"].startswith(app_server.url + "/display/c1?key=")


def test_a_tv_snapshot_carries_no_waiting_names(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    names = [f"Patient Number{i} Surname" for i in range(30)]
    for name in names:
        app_server.run(app_server.engine.issue("gp", name=name))
    key = app_server.run(access.create_display_key(app_server.app.state.store, app_server.app.state.redis, "c1"))

    async def snapshot_of_tv() -> dict[str, Any]:
        async with await open_ws(ws_url(app_server.url, f"/ws/display/c1?key={key}")) as tv:
            return await recv(tv)

    snapshot = asyncio.run(snapshot_of_tv())
    assert len(snapshot["queues"][0]["waiting"]) == 30  # the labels the screen lists
    text = str(snapshot)
    assert not any(part in text for name in names for part in name.split()[1:2])


AT_COUNTER = ("called", "serving")
TV_PEOPLE = ("Xavier Yusuf", "Ingrid Oberon", "Ulrich Vasquez", "Kiran Hemdatta")  # initials all differ


def _check_tv_frame(frame: dict[str, Any], shown: dict[int, str]) -> None:
    """A display frame names only the tickets at a counter, as the screen shows them."""
    entries = [e for q in frame.get("queues", []) for e in q.get("now_serving", []) + q.get("waiting", [])]
    for e in entries + frame.get("tickets", []):
        if e["status"] in AT_COUNTER:
            assert e["name"] == shown[e["id"]], frame
        else:
            assert e["name"] is None, frame


@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
def test_no_display_frame_carries_a_name_the_screen_does_not_show(start_server: StartServer, mask: bool) -> None:
    live = start_server()
    live.clinic("c1", ("gp",), mask_names=mask)
    key = live.run(access.create_display_key(live.app.state.store, live.app.state.redis, "c1"))
    desk = live.bearer("reception")
    ids = [desk.post("/queues/gp/tickets", json={"name": name}).json()["ticket"]["id"] for name in TV_PEOPLE[:1]]
    path = f"/ws/display/c1?key={key}"

    async def until(ws: Any, version: int) -> list[str]:
        got: list[str] = []
        while not got or json.loads(got[-1]).get("version", -1) < version or json.loads(got[-1])["type"] == "call":
            got.append(await asyncio.wait_for(ws.recv(), 10))
        return got

    async def watch() -> tuple[list[str], list[str], str]:
        async with await open_ws(ws_url(live.url, path)) as tv:
            first = await tv.recv()
            since = json.loads(first)["version"]
            ids.extend(desk.post("/queues/gp/tickets", json={"name": name}).json()["ticket"]["id"] for name in TV_PEOPLE[1:])
            assert desk.post("/queues/gp/next", json={"counter": "3"}).status_code == 200  # Xavier at counter 3
            assert desk.post("/queues/gp/next", json={"counter": "3"}).status_code == 200  # Xavier done, Ingrid called
            assert desk.post(f"/tickets/{ids[3]}/cancel").status_code == 200  # Kiran leaves; Ulrich waits
            end = desk.get("/queues/gp").json()["version"]
            frames = [first, *await until(tv, end)]
        async with await open_ws(ws_url(live.url, f"{path}&since={since}")) as again:  # a reconnect's replay
            replay = await until(again, end)
        async with await open_ws(ws_url(live.url, path)) as fresh:
            replay.append(await fresh.recv())
        return frames, replay, httpx.get(f"{live.url}/display/c1?key={key}").text

    frames, replay, page = asyncio.run(watch())
    shown = {tid: (mask_name(name) if mask else name) for tid, name in zip(ids, TV_PEOPLE)}
    assert any(shown[ids[1]] in f for f in frames)  # the screen does show the called patient's name
    for raw in frames + replay:
        frame = json.loads(raw)
        assert frame["type"] in ("snapshot", "update", "call")
        _check_tv_frame(frame, shown)
    never = [part for name in TV_PEOPLE[2:] for part in (*name.split(), mask_name(name))]  # only ever waiting
    if mask:
        never += [part for name in TV_PEOPLE[:2] for part in name.split()]  # shown masked only
    for text in [*frames, *replay, page]:
        assert not [part for part in never if part in text], text
