"""The hub over real sockets: a real uvicorn server running ``create_app``, real ``websockets``
clients, the real engine on the same Redis making the changes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
from typing import Any

import pytest

from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record import access
from tests.support_http import LiveServer, StartServer, app_server, start_server  # noqa: F401  (fixtures)
from tests.support_hub import Screen, close_code, engine_labels, open_ws, recv, recv_until, ws_url

Json = dict[str, Any]


@pytest.fixture
def live(app_server: LiveServer) -> LiveServer:  # noqa: F811
    app_server.clinic("c1", ("gp", "lab"), mask_names=True)
    return app_server


def display_url(live: LiveServer, since: int | None = None, key: str | None = None) -> str:
    key = key if key is not None else live.run(access.create_display_key(live.app.state.store, live.app.state.redis, "c1"))
    return ws_url(live.url, f"/ws/display/c1?key={key}" + ("" if since is None else f"&since={since}"))


async def test_display_snapshot_then_updates_and_calls(live: LiveServer, engine: QueueEngine) -> None:
    a = await engine.issue("gp", name="Ramesh Kumar")
    await engine.issue("gp", name="Sita Devi")
    async with await open_ws(display_url(live)) as ws:
        snap = await recv(ws)
        assert snap["type"] == "snapshot" and snap["version"] == await engine.version("c1")
        gp = snap["queues"][0]
        assert [(e["label"], e["name"]) for e in gp["waiting"]] == [("A-001", None), ("A-002", None)]
        assert "avg_wait_s" in gp and snap["recent"] == []
        await engine.next("gp", "3")
        upd, call = await recv(ws), await recv(ws)
        assert upd["type"] == "update" and upd["version"] == snap["version"] + 1
        assert upd["tickets"][0]["label"] == a["label"] and upd["tickets"][0]["status"] == "called"
        assert call == {"type": "call", "version": upd["version"], "label": a["label"], "counter": "3", "queue": "gp"}
        await engine.recall(a["id"])
        upd2, call2 = await recv(ws), await recv(ws)
        assert (upd2["version"], call2["type"], call2["label"]) == (upd["version"] + 1, "call", a["label"])
        assert "Ramesh" not in json.dumps([snap, upd, upd2])


async def test_patient_sees_only_its_own_ticket(live: LiveServer, engine: QueueEngine) -> None:
    others = [await engine.issue("gp", name=f"Other Person{i}") for i in range(3)]
    mine = await engine.issue("gp", name="Me Myself")
    async with await open_ws(ws_url(live.url, f"/ws/t/{mine['token']}")) as ws:
        snap = await recv(ws)
        expected = {"type": "snapshot", "label": mine["label"], "status": "waiting", "position": 4, "ahead": 3,
                    "counter": None, "queue": {"name": "Queue gp"}, "clinic": {"name": "Clinic c1"}}
        assert {k: snap[k] for k in expected} == expected
        messages = [snap]
        await engine.issue("lab", name="Lab Person")  # another queue: nothing for me
        for o in others:
            await engine.next("gp", "1")
            messages += await recv_until(ws, await engine.version("c1"))
        await engine.next("gp", "2")
        messages += await recv_until(ws, await engine.version("c1"))
        messages.append(await recv(ws))
        assert [m["type"] for m in messages[-2:]] == ["update", "call"]
        assert messages[-2]["status"] == "called" and messages[-2]["counter"] == "2"
        public = await engine.ticket_by_token(mine["token"])
        assert public is not None
        last = messages[-2]
        assert (last["status"], last["position"], last["version"]) == ("called", None, public["version"])
        positions = [m.get("position") for m in messages if m["type"] != "call"]
        assert positions == [4, 3, 2, 1, None]
        text = json.dumps(messages)
        for o in others:
            assert o["label"] not in text and o["token"] not in text
        for secret in ("Other", "Lab Person", "Me Myself", mine["token"], '"id"', '"name": "Me'):
            assert secret not in text


async def test_resume_replays_or_snapshots(live: LiveServer, engine: QueueEngine, aredis: Any) -> None:
    url = display_url(live)
    async with await open_ws(url) as ws:
        v0 = (await recv(ws))["version"]
    for i in range(5):
        await engine.issue("gp", name=f"P {i}")
    async with await open_ws(url + f"&since={v0}") as ws:
        got = await recv_until(ws, v0 + 5)
        assert [(m["type"], m["version"]) for m in got] == [("update", v0 + i) for i in range(1, 6)]
        await engine.issue("lab")
        assert (await recv(ws))["version"] == v0 + 6  # then live, without a gap
    await aredis.xtrim(keys.events("c1"), maxlen=1, approximate=False)
    async with await open_ws(url + f"&since={v0}") as ws:
        snap = await recv(ws)
        assert (snap["type"], snap["version"]) == ("snapshot", v0 + 6)
    async with await open_ws(url + "&since=99999") as ws:
        assert (await recv(ws))["type"] == "snapshot"


async def test_patient_resume(live: LiveServer, engine: QueueEngine) -> None:
    t = await engine.issue("gp")
    url = ws_url(live.url, f"/ws/t/{t['token']}")
    async with await open_ws(url) as ws:
        v0 = (await recv(ws))["version"]
    await engine.issue("lab")  # not visible to this patient
    async with await open_ws(url + f"?since={v0}") as ws:
        await engine.next("gp")
        got = await recv(ws)  # nothing was owed, so the first message is the live call
        assert (got["type"], got["version"], got["status"]) == ("update", v0 + 2, "called")
        v1 = got["version"]
    await engine.done(t["id"])
    async with await open_ws(url + f"?since={v1}") as ws:
        got = await recv(ws)
        assert (got["type"], got["version"], got["status"]) == ("update", v1 + 1, "done")


async def test_random_drops_during_a_burst(live: LiveServer, engine: QueueEngine) -> None:
    """Reconnect with ``since`` at random moments while ~200 changes happen: the screen ends
    equal to the engine's state, having seen every version at most once, in order."""
    rng = random.Random(3)
    url = display_url(live)
    patient = await engine.issue("gp", name="Watcher")
    done = asyncio.Event()

    async def burst() -> None:
        ids: list[int] = []
        for _ in range(200):
            if rng.random() < 0.55 or not ids:
                ids.append((await engine.issue(rng.choice(["gp", "lab"]), name="X Y"))["id"])
            else:
                await engine.next(rng.choice(["gp", "lab"]), rng.choice(["1", "2"]))
        done.set()

    async def follow(base: str, apply: Any) -> None:
        since: int | None = None
        while True:
            url = base if since is None else f"{base}{'&' if '?' in base else '?'}since={since}"
            # unbounded client buffer: with unread frames beyond max_queue the client stops
            # reading, misses the server's close reply and waits out close_timeout
            async with await open_ws(url, max_queue=None) as ws:
                for _ in range(rng.randint(1, 25)):
                    try:
                        msg = await recv(ws, 0.5)
                    except TimeoutError:
                        if done.is_set():
                            return
                        continue
                    since = apply(msg)

    screen = Screen()
    patient_msgs: list[Json] = []

    def apply_screen(msg: Json) -> int:
        screen.apply(msg)
        return screen.version

    def apply_patient(msg: Json) -> int:
        if msg["type"] != "call":
            assert not patient_msgs or msg["version"] > patient_msgs[-1]["version"]
            patient_msgs.append(msg)
        return int(patient_msgs[-1]["version"])

    async with asyncio.TaskGroup() as tasks:  # a failure cancels the others
        tasks.create_task(burst())
        tasks.create_task(follow(url, apply_screen))
        tasks.create_task(follow(ws_url(live.url, f"/ws/t/{patient['token']}"), apply_patient))
    final = await engine.clinic_state("c1")
    assert screen.version == final["v"]
    assert screen.labels() == engine_labels(final)
    # Every version at most once, in order. A socket that falls behind on a loaded machine is
    # resynced (a fresh snapshot, docs/fanout.md) and skips versions: allowed, not required.
    assert screen.seen == sorted(set(screen.seen)) and screen.seen[-1] == final["v"]
    assert screen.seen == list(range(screen.seen[0], final["v"] + 1)) or screen.snapshots > 1
    public = await engine.ticket_by_token(patient["token"])
    assert public is not None
    assert {k: patient_msgs[-1][k] for k in ("status", "position", "counter")} == \
        {k: public[k] for k in ("status", "position", "counter")}


def shrink_server_side(peer: tuple[str, int]) -> None:
    """Give the server's end of the connection from ``peer`` a small send buffer (the server
    runs in this process): otherwise Linux lets megabytes pile up on loopback first."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue
        with sock:
            try:
                if sock.type == socket.SOCK_STREAM and sock.getpeername() == peer:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                    return
            except OSError:
                pass
    raise AssertionError("server side of the slow socket not found")


async def test_slow_client_is_resynced_and_delays_nobody(start_server: StartServer, engine: QueueEngine) -> None:  # noqa: F811
    """A screen that stops reading fills its socket, then its queue: it is coalesced into one
    snapshot, while another screen gets every update."""
    app_server = start_server(hub__send_queue=8)
    app_server.clinic("c1", ("gp",))
    url = display_url(app_server)
    tiny = socket.socket()
    tiny.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a phone on a bad link
    tiny.connect(("127.0.0.1", int(app_server.url.rsplit(":", 1)[1])))
    async with await open_ws(url, max_queue=1, sock=tiny) as slow, await open_ws(url) as fast:
        start = (await recv(fast))["version"]
        shrink_server_side(tiny.getsockname())
        slow.transport.pause_reading()  # the kernel buffers fill, then the server's send blocks
        hub = app_server.app.state.hub
        for i in range(1, 11):
            await asyncio.gather(*(engine.issue("gp", name="N" * 80) for _ in range(100)))
            # the reading screen keeps up all along
            assert (await recv_until(fast, start + 100 * i))[-1]["version"] == start + 100 * i
        final = await engine.version("c1")
        assert final == start + 1000
        assert max(len(s.queue or ()) for subs in hub.subs.values() for s in subs) <= hub.limit
        slow.transport.resume_reading()
        screen = Screen()
        while screen.version < final:
            screen.apply(await recv(slow))
        assert screen.snapshots >= 2  # the first, and at least one resync
        assert screen.labels() == engine_labels(await engine.clinic_state("c1"))


async def test_close_codes(live: LiveServer, engine: QueueEngine) -> None:
    good = display_url(live)
    assert await close_code(display_url(live, key="not-a-valid-key-0000000000")) == 4401
    assert await close_code(ws_url(live.url, "/ws/display/c1")) == 4401
    assert await close_code(ws_url(live.url, "/ws/display/other?key=" + good.split("key=")[1])) == 4401
    assert await close_code(ws_url(live.url, "/ws/t/" + "x" * 32)) == 4404
    assert await close_code(good, origin="http://evil.example") == 4403
    assert await close_code(ws_url(live.url, "/ws/reception/c1")) == 4401
    host = live.url.removeprefix("http://")
    async with await open_ws(good, origin=f"http://{host}") as ws:  # same origin
        assert (await recv(ws))["type"] == "snapshot"
    async with await open_ws(good) as ws:  # no Origin: not a browser
        assert (await recv(ws))["type"] == "snapshot"


async def test_reception_full_detail_doctor_sees_own_queues(live: LiveServer, engine: QueueEngine) -> None:
    await engine.issue("gp", name="Gp Patient")
    await engine.issue("lab", name="Lab Patient")
    reception = live.staff("reception")
    doctor = live.staff("doctor", ("gp",))
    url = ws_url(live.url, "/ws/reception/c1")

    def cookie(c: Any) -> dict[str, str]:
        return {"Cookie": f"qtraq_session={c.cookies['qtraq_session']}"}

    async with await open_ws(url, additional_headers=cookie(reception)) as full, \
            await open_ws(url, additional_headers=cookie(doctor)) as mine:
        s_full, s_mine = await recv(full), await recv(mine)
        assert [q["id"] for q in s_full["queues"]] == ["gp", "lab"]
        assert s_full["queues"][0]["waiting"][0]["name"] == "Gp Patient"  # unmasked for staff
        assert [q["id"] for q in s_mine["queues"]] == ["gp"]
        await engine.issue("lab", name="Second Lab")
        await engine.issue("gp", name="Second Gp")
        v = await engine.version("c1")
        got_full = await recv_until(full, v)
        got_mine = await recv_until(mine, v)
        assert [m["version"] for m in got_full] == [v - 1, v]
        assert [m["version"] for m in got_mine] == [v]  # the lab change is not the doctor's
        assert got_mine[0]["tickets"][0]["name"] == "Second Gp"
    assert await close_code(ws_url(live.url, "/ws/reception/nope"), additional_headers=cookie(reception)) == 4404


async def test_setting_change_resyncs_and_finished_ticket_shows(live: LiveServer, engine: QueueEngine) -> None:
    t = await engine.issue("gp", name="Ramesh Kumar")
    await engine.next("gp")
    await engine.done(t["id"])
    async with await open_ws(display_url(live)) as ws, \
            await open_ws(ws_url(live.url, f"/ws/t/{t['token']}")) as patient:
        snap = await recv(ws)
        mine = await recv(patient)  # finished before this hub knew the clinic: read from Redis
        assert (mine["type"], mine["status"], mine["position"], mine["version"]) == \
            ("snapshot", "done", None, snap["version"])
        await engine.issue("gp", name="Sita Devi")
        assert (await recv(ws))["tickets"][0]["name"] is None  # waiting: by label only (issue #21 item 18)
        await engine.next("gp")
        called = await recv(ws)
        assert [(e["status"], e["name"]) for e in called["tickets"]] == [("called", "S. D.")]  # shown, masked
        assert (await recv(ws))["type"] == "call"
        await engine.issue("gp", name="Mohan Lal")
        assert (await recv(ws))["tickets"][0]["name"] is None
        await engine.update_clinic("c1", mask_names=False)
        again = await recv(ws)  # every name renders differently now: a fresh snapshot
        assert again["type"] == "snapshot" and again["clinic"]["mask_names"] is False
        assert [e["name"] for e in again["queues"][0]["now_serving"]] == ["Sita Devi"]
        assert [e["name"] for e in again["queues"][0]["waiting"]] == [None]  # labels only (issue #21 item 18)


async def test_doctor_resumes_with_only_own_queues(live: LiveServer, engine: QueueEngine) -> None:
    doctor = live.staff("doctor", ("lab",))
    url = ws_url(live.url, "/ws/reception/c1")
    headers = {"Cookie": f"qtraq_session={doctor.cookies['qtraq_session']}"}
    async with await open_ws(url, additional_headers=headers) as ws:
        v0 = (await recv(ws))["version"]
    await engine.issue("gp", name="Gp One")
    await engine.issue("lab", name="Lab One")
    await engine.issue("gp", name="Gp Two")
    async with await open_ws(f"{url}?since={v0}", additional_headers=headers) as ws:
        got = await recv(ws)
        assert (got["type"], got["version"]) == ("update", v0 + 2)
        assert [t["name"] for t in got["tickets"]] == ["Lab One"]
        await engine.issue("lab", name="Lab Two")
        assert (await recv(ws))["version"] == v0 + 4


async def test_a_busy_socket_queues_then_goes_back_to_inline_sends(start_server: StartServer,  # noqa: F811
                                                                   engine: QueueEngine) -> None:
    """A socket whose transport is full is handed to a task and its messages are queued (in
    order, nothing dropped while the queue has room); the other screen is sent to inline all
    along; once the slow one drains, it is idle again and is sent to inline too."""
    app_server = start_server(hub__send_queue=100_000)
    app_server.clinic("c1", ("gp",))
    url = display_url(app_server)
    hub = app_server.app.state.hub
    tiny = socket.socket()
    tiny.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tiny.connect(("127.0.0.1", int(app_server.url.rsplit(":", 1)[1])))

    async def states() -> dict[str, tuple[bool, int]]:
        """Per socket (by the port of its client): is it busy (a task), and how much is queued."""
        return {str(s.ws.client.port): (isinstance(s.busy, asyncio.Task), len(s.queue or ()))  # type: ignore[union-attr]
                for subs in hub.subs.values() for s in subs}

    async with await open_ws(url, max_queue=1, sock=tiny) as slow, await open_ws(url) as fast:
        start = (await recv(fast))["version"]
        slow_port, fast_port = str(tiny.getsockname()[1]), str(fast.local_address[1])
        shrink_server_side(tiny.getsockname())
        slow.transport.pause_reading()
        issued = 0
        while not app_server.run(states())[slow_port][0]:
            assert issued < 3000, "the slow socket never became busy"
            await asyncio.gather(*(engine.issue("gp", name="N" * 80) for _ in range(50)))
            issued += 50
            assert (await recv_until(fast, start + issued))[-1]["version"] == start + issued
            assert app_server.run(states())[fast_port] == (False, 0)  # the reading screen stays inline
        await asyncio.gather(*(engine.issue("gp", name="N" * 80) for _ in range(30)))
        issued += 30
        await recv_until(fast, start + issued)
        busy, queued = app_server.run(states())[slow_port]
        assert busy and queued >= 1
        slow.transport.resume_reading()
        screen = Screen()
        while screen.version < start + issued:
            screen.apply(await recv(slow))
        assert screen.snapshots == 1 and screen.seen == list(range(start + 1, start + issued + 1))
        assert app_server.run(states())[slow_port] == (False, 0)
        await engine.issue("gp")
        assert (await recv(slow))["version"] == start + issued + 1
