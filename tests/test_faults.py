"""Faults, tried for real: a SIGKILLed server mid-burst, Redis stopped for a while, Redis wiped,
and a full or read-only record. Each must end in a clear error and a full recovery, with no
accepted change lost and nothing corrupted.

A SIGKILLed RQ worker mid-job is covered in ``test_notify_delivery.py``
(``test_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice``); start-up rebuilding an
empty Redis in ``test_serve.py`` (``test_empty_redis_is_rebuilt_from_the_record_at_start``).
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import BrowserContext
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from qtraq_live.errors import Unavailable
from qtraq_live.record import access
from qtraq_live.record.persister import Persister
from qtraq_live.runtime.embedded_redis import EmbeddedRedis
from support_browser import browser, open_page  # noqa: F401
from support_serve import ServeProcess, clean_env, wait_until
from test_serve import (admin_token, api, data_dir, external_redis, make_clinic, ok,  # noqa: F401
                        persisted_version, version)
from tests.conftest import TIMEOUT_FACTOR
from tests.support_http import StartServer, error_of, start_server  # noqa: F401
from tests.support_hub import WAIT_S, close_code, open_ws, recv, recv_until, ws_url

pytestmark = pytest.mark.slow
DOWN_S = 30 * TIMEOUT_FACTOR  # longest a recovery may take


def _display_key(client: httpx.Client, clinic: str) -> str:
    return str(ok(client.post(f"/admin/clinics/{clinic}/display-keys", json={}))["key"])


# -- (a) SIGKILL during a burst ------------------------------------------------------------


class Screen(threading.Thread):
    """A display socket read in a thread; remembers the last version it saw."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.last = 0
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=WAIT_S, proxy=None) as ws:
                for raw in ws:
                    msg = json.loads(raw)
                    self.last = max(self.last, int(msg.get("version", 0)))
                    self.ready.set()
        except (OSError, ConnectionClosed):
            return  # the server was killed


def test_sigkill_mid_burst_loses_no_accepted_change_and_clients_resume(data_dir: Path) -> None:
    token = admin_token(data_dir)
    srv = ServeProcess(data_dir).start()
    try:
        with api(srv, token) as client:
            make_clinic(client)
            key = _display_key(client, "north")
        ws_base = srv.url.replace("http://", "ws://")
        screen = Screen(f"{ws_base}/ws/display/north?key={key}")
        screen.start()
        assert screen.ready.wait(WAIT_S)
        issued: list[dict[str, Any]] = []
        called: list[dict[str, Any]] = []
        stop = threading.Event()

        def burst() -> None:
            with api(srv, token) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/queues/gp/tickets", json={})
                        if r.status_code == 201:
                            issued.append(r.json()["ticket"])
                        if len(issued) % 3 == 0:
                            r = c.post("/queues/gp/next", json={"counter": "1"})
                            if r.status_code == 200 and r.json()["called"]:
                                called.append(r.json()["called"])
                    except httpx.HTTPError:
                        return

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(burst)
            wait_until(lambda: len(issued) >= 30 and screen.last > 10, 60, "a burst under way")
            srv.kill()
            stop.set()
            running.result()
        seen = screen.last

        srv = ServeProcess(data_dir).start()
        with api(srv, token) as client:
            for ticket in issued:  # every acknowledged ticket is still there
                assert ok(client.get(f"/tickets/{ticket['id']}"))["ticket"]["label"] == ticket["label"]
            for ticket in called:  # every acknowledged call stands
                assert ok(client.get(f"/tickets/{ticket['id']}"))["ticket"]["status"] in ("called", "done")
            before = version(client)
            assert before >= seen
            ok(client.post("/queues/gp/tickets", json={}))
            assert version(client) == before + 1  # the sequence continues
            ws_base = srv.url.replace("http://", "ws://")
            with connect(f"{ws_base}/ws/display/north?key={key}&since={seen}", open_timeout=WAIT_S,
                         proxy=None) as ws:
                first = json.loads(ws.recv(timeout=WAIT_S))
                versions = [int(first["version"])]
                while versions[-1] < before + 1:
                    versions.append(int(json.loads(ws.recv(timeout=WAIT_S))["version"]))
            if first["type"] == "update":  # a replay resumes exactly after what the screen saw
                assert versions[0] == seen + 1
            else:
                assert first["type"] == "snapshot"
            waiting = [t for t in issued if t["id"] not in {c["id"] for c in called}]
            with connect(f"{ws_base}/ws/t/{waiting[-1]['token']}?since={seen}", open_timeout=WAIT_S,
                         proxy=None) as ws:
                assert json.loads(ws.recv(timeout=WAIT_S))["type"] in ("snapshot", "update")
        assert srv.stop() == 0
    finally:
        srv.kill()


# -- (b) Redis stops for a while -----------------------------------------------------------


async def test_redis_outage_is_503_closes_screens_and_heals_by_itself(start_server: StartServer,
                                                                      external_redis: EmbeddedRedis) -> None:
    live = start_server(redis_url=external_redis.url)
    live.clinic("c1", ("gp",))
    desk = live.bearer("reception")
    key = live.run(access.create_display_key(live.app.state.store, live.app.state.redis, "c1"))
    token = desk.post("/queues/gp/tickets", json={}).json()["ticket"]["token"]
    screen_url = ws_url(live.url, f"/ws/display/c1?key={key}")
    async with await open_ws(screen_url) as screen:
        seen = (await recv(screen))["version"]
        external_redis.stop()
        refused = desk.post("/queues/gp/tickets", json={})
        assert error_of(refused) == (503, "unavailable")
        assert "unreachable" in refused.json()["error"]["message"]
        assert error_of(live.client().get(f"/t/{token}")) == (503, "unavailable")
        assert httpx.get(live.url + "/readyz").status_code == 503
        assert httpx.get(live.url + "/healthz").status_code == 200
        with pytest.raises(ConnectionClosed) as closed:  # the screen is told, and shows "reconnecting"
            while True:
                await recv(screen, timeout=DOWN_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert await close_code(screen_url) == 1013  # try again later

    external_redis.start()
    wait_until(lambda: desk.post("/queues/gp/tickets", json={}).status_code == 201, DOWN_S, "writes to recover")
    async with await open_ws(f"{screen_url}&since={seen}") as screen:
        got = await recv_until(screen, live.run(live.engine.version("c1")))
        assert got[0]["version"] == seen + 1 or got[0]["type"] == "snapshot"
    assert live.client().get(f"/t/{token}").status_code == 200
    assert httpx.get(live.url + "/readyz").status_code == 200


@pytest.mark.browser
def test_display_page_shows_reconnecting_while_redis_is_down(start_server: StartServer, external_redis: EmbeddedRedis,
                                                             browser: BrowserContext) -> None:  # noqa: F811
    live = start_server(redis_url=external_redis.url)
    live.clinic("c1", ("gp",))
    key = live.run(access.create_display_key(live.app.state.store, live.app.state.redis, "c1"))
    tv = open_page(browser, f"{live.url}/display/c1?key={key}", 1280, 720)
    page = tv.page
    page.wait_for_function("() => document.body.dataset.socket === 'open'")
    external_redis.stop()
    page.wait_for_function("() => !document.getElementById('conn').hidden", timeout=DOWN_S * 1000)
    external_redis.start()
    page.wait_for_function("() => document.body.dataset.socket === 'open' && document.getElementById('conn').hidden",
                           timeout=DOWN_S * 1000)
    desk = live.bearer("reception")
    ticket = desk.post("/queues/gp/tickets", json={}).json()["ticket"]
    desk.post("/queues/gp/next", json={"counter": "3"})
    page.wait_for_function("l => document.getElementById('call-label').textContent === l", arg=ticket["label"])
    page.close()


# -- (c) Redis wiped -----------------------------------------------------------------------


def test_wiped_redis_is_restored_exactly_by_rebuild(data_dir: Path, external_redis: EmbeddedRedis) -> None:
    env = {"QTRAQ_REDIS_URL": external_redis.url}
    token = admin_token(data_dir, **env)
    with ServeProcess(data_dir, env=env) as srv, api(srv, token) as client:
        make_clinic(client)
        key = _display_key(client, "north")
        issued = [ok(client.post("/queues/gp/tickets", json={"name": f"P{i}"}))["ticket"] for i in range(5)]
        ok(client.post("/queues/gp/next", json={"counter": "2"}))
        ok(client.post(f"/tickets/{issued[3]['id']}/cancel"))
        skipped = ok(client.post("/queues/gp/next", json={"counter": "3"}))["called"]
        ok(client.post(f"/tickets/{skipped['id']}/skip"))
        last = version(client)
        wait_until(lambda: persisted_version(data_dir, "north") == last, 20, "the persister to catch up")
        before = ok(client.get("/queues/gp")), ok(client.get("/clinics/north"))
    with redis.Redis.from_url(external_redis.url) as r:
        r.flushall()
    result = subprocess.run(["qtraq-live", "rebuild"], capture_output=True, text=True, timeout=60,
                            env=clean_env(data_dir, **env))
    assert result.returncode == 0, result.stderr
    with ServeProcess(data_dir, env=env) as srv, api(srv, token) as client:
        after = ok(client.get("/queues/gp")), ok(client.get("/clinics/north"))
        assert _differences(after, before) == []
        # P0 and P1 were called, P3 cancelled: P4 waits behind P2
        assert httpx.get(f"{srv.url}/api/v1/t/{issued[4]['token']}").json()["position"] == 2
        assert httpx.get(f"{srv.url}/display/north?key={key}").status_code == 200  # display keys came back
        ok(client.post(f"/tickets/{skipped['id']}/requeue"))
        assert version(client) == last + 1


def _differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two JSON documents differ (a readable failure for a big snapshot)."""
    if isinstance(want, dict) and isinstance(got, dict):
        return [d for k in sorted(set(want) | set(got)) for d in _differences(got.get(k), want.get(k), f"{path}.{k}")]
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)) and len(want) == len(got):
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in _differences(g, w, f"{path}[{i}]")]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


# -- (e) the record's disk is full or read-only --------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB file system for the data dir (tmpfs), so "full" and "read-only" are the
    kernel's ENOSPC and EROFS rather than a simulation. Needs the right to mount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of the file system."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:  # unbuffered: closing it has nothing left to write
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_a_clear_503_and_nothing_is_half_written(small_disk: Path, start_server: StartServer) -> None:
    live = start_server(data_dir=str(small_disk / "data"))
    live.clinic("c1", ("gp",))
    desk = live.bearer("reception")
    ok(desk.post("/queues/gp/tickets", json={}))
    store = live.app.state.store
    persist = Persister(live.app.state.redis, store)
    live.run(persist.drain())
    version_before = live.run(live.engine.version("c1"))
    filler = _fill(small_disk)
    contact = {"mobile": "+919812345678", "notify": True}
    for _ in range(3):  # a few, so the WAL must grow past what is already allocated
        refused = desk.post("/queues/gp/tickets", json=contact)
        if refused.status_code != 201:
            break
        version_before += 1
    assert error_of(refused) == (503, "unavailable")
    assert "disk is full" in refused.json()["error"]["message"]
    assert live.run(live.engine.version("c1")) == version_before  # no ticket without its contact row
    ok(desk.post("/queues/gp/tickets", json={}))  # tickets without contacts need no record write
    with pytest.raises(Unavailable):
        live.run(persist.drain())  # the persister waits; its entries stay in the stream

    filler.unlink()
    assert live.run(persist.drain()) > 0
    assert live.run(store.fetchval("PRAGMA integrity_check")) == "ok"
    assert live.run(store.fetchval("SELECT MAX(version) FROM events WHERE clinic = 'c1'")) == version_before + 1
    assert desk.post("/queues/gp/tickets", json=contact).status_code == 201


def test_serve_on_a_read_only_data_dir_stops_with_a_clear_error(small_disk: Path) -> None:
    data = small_disk / "data"
    data.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for extra in ({}, {"QTRAQ_SECRET_KEY": "k" * 40}):  # the generated key, then the record itself
        result = subprocess.run(["qtraq-live", "serve", "--port", "0"], capture_output=True, text=True,
                                timeout=60, env=clean_env(data, **extra))
        assert result.returncode != 0
        assert re.search("[Rr]ead-only", result.stderr) and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert list(data.iterdir()) == []  # nothing half-made
