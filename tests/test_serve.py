"""``qtraq-live serve`` as real processes: start-up, a clinic flow over HTTP, crash and restart,
an external Redis, several HTTP processes, a hub, and a clean stop."""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from qtraq_live.config import load_settings
from qtraq_live.record import access
from qtraq_live.runtime.duties import Context
from qtraq_live.runtime.embedded_redis import EmbeddedRedis
from qtraq_live.runtime.offline import run_offline
from conftest import TIMEOUT_FACTOR
from support_serve import ServeProcess, alive, children_of, clean_env, wait_until

pytestmark = pytest.mark.slow
PASSWORD = "a long enough secret"


def cli(data_dir: Path, *args: str, stdin: str = "", **env: str) -> str:
    result = subprocess.run(["qtraq-live", *args], input=stdin, capture_output=True, text=True, timeout=60,
                            env=clean_env(data_dir, **env))
    assert result.returncode == 0, result.stderr
    return result.stdout


def admin_token(data_dir: Path, **env: str) -> str:
    """An admin and its API token, made while the server is stopped the way the CLI makes them
    (``run_offline``; test_cli.py runs the commands), in this process: two fewer interpreters
    to start, which on two shared cores took a test like the rebuild one past its deadline."""
    settings = load_settings(clean_env(data_dir, **env))

    async def make(ctx: Context) -> str:
        await access.create_user(ctx.store, ctx.redis, "admin", PASSWORD, "admin", ())
        return await access.create_api_token(ctx.store, ctx.redis, "admin")

    # on a thread of its own: where a sync Playwright browser is open, this thread already runs
    # an event loop, and asyncio.run would refuse to start another
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run_offline, settings, make).result()


def api(srv: ServeProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{srv.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def make_clinic(client: httpx.Client, clinic: str = "north", queue: str = "gp") -> None:
    ok(client.post("/clinics", json={"id": clinic, "name": "North Clinic", "timezone": "Asia/Kolkata"}))
    ok(client.post(f"/clinics/{clinic}/queues", json={"id": queue, "name": "Dr. Rao", "prefix": "A"}))


def version(client: httpx.Client, queue: str = "gp") -> int:
    return int(ok(client.get(f"/queues/{queue}"))["version"])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def external_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis started apart from any ``serve``, reached by QTRAQ_REDIS_URL."""
    with EmbeddedRedis(tmp_path / "external-redis") as server:
        yield server


def test_embedded_serve_survives_a_crash_mid_stream(data_dir: Path) -> None:
    token = admin_token(data_dir)
    srv = ServeProcess(data_dir).start()
    try:
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert httpx.get(f"{srv.url}/readyz").status_code == 200
        with api(srv, token) as client:
            assert client.get("/clinics/north").status_code == 404
            make_clinic(client)
            ok(client.post("/queues/gp/tickets", json={"name": "Asha"}))
            called = ok(client.post("/queues/gp/next", json={"counter": "1"}))["called"]
            assert called["label"].endswith("001") and called["status"] == "called"

            acknowledged: list[dict[str, Any]] = []
            stop = threading.Event()

            def issue_until_killed() -> None:
                with api(srv, token) as c:
                    while not stop.is_set():
                        try:
                            r = c.post("/queues/gp/tickets", json={})
                        except httpx.HTTPError:
                            return  # the server is gone
                        if r.status_code == 201:
                            acknowledged.append(r.json()["ticket"])

            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                issuing = pool.submit(issue_until_killed)
                wait_until(lambda: len(acknowledged) >= 20, 30, "tickets to be issued")
                srv.kill()  # SIGKILL mid-stream; the helper also waits for every child to exit
                stop.set()
                issuing.result()
        assert not (data_dir / "redis" / "redis.sock").exists()

        srv = ServeProcess(data_dir).start()
        with api(srv, token) as client:
            snapshot = ok(client.get("/queues/gp"))
            waiting_ids = {t["id"] for t in snapshot["waiting"]}
            assert {t["id"] for t in acknowledged} <= waiting_ids  # nothing acknowledged was lost
            assert snapshot["now_serving"][0]["id"] == called["id"]
            before = snapshot["version"]
            assert before >= 4 + len(acknowledged)  # clinic, queue, issue, next, then the stream
            after = ok(client.post("/queues/gp/next", json={"counter": "1"}))["called"]
            assert after["id"] == min(waiting_ids)
            assert version(client) == before + 1  # the sequence continues
            # and the durable record catches up with everything, the crash included
            wait_until(lambda: persisted_version(data_dir, "north") == before + 1, 20, "the persister")
        with sqlite3.connect(data_dir / "qtraq.db") as conn:
            stored = {row[0] for row in conn.execute("SELECT id FROM tickets")}
        assert {t["id"] for t in acknowledged} <= stored
        assert srv.stop() == 0
    finally:
        srv.kill()


# Two servers one after the other, each with its own waits scaled by TIMEOUT_FACTOR (start 45 s,
# persister 20 s, stop 30 s): the whole-test limit scales with them.
@pytest.mark.timeout(120 * TIMEOUT_FACTOR)
def test_empty_redis_is_rebuilt_from_the_record_at_start(data_dir: Path) -> None:
    token = admin_token(data_dir)
    with ServeProcess(data_dir) as srv, api(srv, token) as client:
        make_clinic(client)
        issued = [ok(client.post("/queues/gp/tickets", json={}))["ticket"] for _ in range(3)]
        ok(client.post("/queues/gp/next", json={}))
        last = version(client)
        # stop once the persister has written the last version to SQLite
        wait_until(lambda: persisted_version(data_dir, "north") == last, 20, "the persister")
        refused = subprocess.run(["qtraq-live", "rebuild"], capture_output=True, text=True, timeout=60,
                                 env=clean_env(data_dir))
        assert refused.returncode == 1 and "stop the server first" in refused.stderr
    shutil.rmtree(data_dir / "redis")  # the live state is lost; the record is not

    with ServeProcess(data_dir) as srv, api(srv, token) as client:
        assert "rebuilding live state" in srv.log_text()
        snapshot = ok(client.get("/queues/gp"))
        assert snapshot["version"] == last
        assert [t["id"] for t in snapshot["waiting"]] == [t["id"] for t in issued[1:]]
        ok(client.post("/queues/gp/next", json={}))
        assert version(client) == last + 1
        assert httpx.get(f"{srv.url}/api/v1/t/{issued[2]['token']}").status_code == 200
    assert "live state rebuilt" in cli(data_dir, "rebuild")  # by hand, server stopped


def persisted_version(data_dir: Path, clinic: str) -> int | None:
    with sqlite3.connect(data_dir / "qtraq.db") as conn:
        row = conn.execute("SELECT MAX(version) FROM events WHERE clinic = ?", (clinic,)).fetchone()
    return row[0] if row else None


def test_external_redis_two_http_processes_and_a_hub(tmp_path: Path, external_redis: EmbeddedRedis) -> None:
    url = {"QTRAQ_REDIS_URL": external_redis.url}
    primary_dir = tmp_path / "primary"
    token = admin_token(primary_dir, **url)
    with ServeProcess(primary_dir, env=url, args=["--workers", "2"]) as primary:
        assert not (primary_dir / "redis").exists()  # no embedded Redis
        log = primary.log_text()
        assert log.count("Started server process") == 2
        assert "started rq-worker" not in log  # external Redis: workers run elsewhere
        assert "started duties" in log
        with api(primary, token) as client:
            make_clinic(client, "east", "east-gp")
            ticket = ok(client.post("/queues/east-gp/tickets", json={}))["ticket"]
            assert ok(client.get("/queues/east-gp"))["waiting"][0]["id"] == ticket["id"]
            # many requests land on both processes; every one sees the same state
            versions = {version(client, "east-gp") for _ in range(20)}
            assert versions == {3}

            def http_processes() -> list[int]:
                return [p for p in children_of(primary.proc.pid)  # type: ignore[union-attr]
                        if alive(p) and b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

            first = http_processes()
            assert len(first) == 2
            subprocess.run(["kill", "-KILL", str(first[0])], check=True)
            wait_until(lambda: len(http_processes()) == 2 and first[0] not in http_processes(), 30,
                       "the dead HTTP process to be replaced")
            assert {version(client, "east-gp") for _ in range(10)} == {3}

        hub_dir = tmp_path / "hub"
        with ServeProcess(hub_dir, env=url, args=["--role", "hub"]) as hub, api(hub, token) as client:
            assert "started duties" not in hub.log_text()
            assert not (hub_dir / "qtraq.db").exists()
            assert version(client, "east-gp") == 3
            refused = client.post("/queues/east-gp/next", json={})
            assert refused.status_code == 421
            assert refused.json()["error"]["code"] == "write_on_hub"


SEED = """
[[clinics]]
id = "west"
name = "West Clinic"
  [[clinics.queues]]
  id = "west-gp"
  name = "Dr. Iyer"
  prefix = "W"

[[staff]]
username = "frontdesk"
role = "reception"
password_env = "TEST_FRONTDESK_PASSWORD"
"""


def test_config_seed_sigterm_and_dead_workers(tmp_path: Path, data_dir: Path) -> None:
    """[[clinics]]/[[staff]] are applied at start; a dead RQ worker is replaced; a second
    serve on the same data dir is refused; SIGTERM stops every child, Redis last."""
    config = tmp_path / "qtraq.toml"
    config.write_text(SEED)
    env = {"QTRAQ_CONFIG": str(config), "TEST_FRONTDESK_PASSWORD": PASSWORD}
    srv = ServeProcess(data_dir, env=env).start()
    assert srv.proc is not None
    try:
        with httpx.Client(base_url=f"{srv.url}/api/v1") as client:
            ok(client.post("/auth/login", json={"username": "frontdesk", "password": PASSWORD}))
            assert [q["id"] for q in ok(client.get("/clinics/west"))["queues"]] == ["west-gp"]

        with pytest.raises(RuntimeError, match=f"already running on {data_dir} .pid {srv.proc.pid}"):
            ServeProcess(data_dir, env=env).start()

        pid = srv.proc.pid

        def workers() -> list[int]:
            return [p for p in children_of(pid) if alive(p) and b"worker" in Path(f"/proc/{p}/cmdline").read_bytes()]

        first = workers()
        assert len(first) == 2  # notify.workers
        redis_pid = int((data_dir / "redis" / "redis.pid").read_text())
        assert redis_pid in children_of(pid)
        subprocess.run(["kill", "-KILL", str(first[0])], check=True)
        wait_until(lambda: len(workers()) == 2 and first[0] not in workers(), 20,
                   "the dead RQ worker to be replaced")

        children = children_of(pid)
        assert srv.stop() == 0
        # (multiprocessing's resource tracker ends when its pipe from the supervisor closes)
        wait_until(lambda: not any(alive(p) for p in children), 10, "every child to exit")
        assert not (data_dir / "serve.json").exists()
        log = srv.log_text()
        assert "Traceback" not in log
        assert log.index("stopped duties") < log.index("embedded redis stopped")
    finally:
        srv.kill()


def demo_logins(srv: ServeProcess) -> tuple[dict[str, str], str]:
    out = srv.log_text()
    logins = dict(re.findall(r"^ +(admin|reception|doctor) +password (\S+)", out, re.M))
    keys = re.findall(r"/display/demo\?key=([A-Za-z0-9_-]+)", out)
    assert len(logins) == 3 and len(keys) == 1, out
    return logins, keys[0]


def test_demo_seeds_once_and_prints_working_logins(data_dir: Path) -> None:
    with ServeProcess(data_dir, command="demo") as srv:
        wait_until(lambda: "Press Ctrl+C" in srv.log_text(), 10, "the demo's welcome")
        logins, key = demo_logins(srv)
        assert httpx.get(f"{srv.url}/display/demo", params={"key": key}).status_code == 200
        with connect(f"{srv.url.replace('http', 'ws', 1)}/ws/display/demo?key={key}") as ws:
            snapshot = json.loads(ws.recv(timeout=10))
            assert snapshot["type"] == "snapshot"
            assert "permessage-deflate" not in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
        assert httpx.get(f"{srv.url}/join/gp").status_code == 200  # gp allows self check-in
        for username, password in logins.items():
            with httpx.Client(base_url=f"{srv.url}/api/v1") as client:
                ok(client.post("/auth/login", json={"username": username, "password": password}))
                clinic = ok(client.get("/clinics/demo"))
                seeded_version = version(client)
        assert clinic["name"] == "Sunrise Clinic"
        assert [(q["id"], q["prefix"]) for q in clinic["queues"]] == [("gp", "A"), ("lab", "L")]
        wait_until(lambda: persisted_version(data_dir, "demo") == seeded_version, 20, "the persister")

    # a restart seeds nothing twice; --simulate drives arrivals and calls through the engine
    with ServeProcess(data_dir, command="demo", args=["--simulate"]) as srv:
        wait_until(lambda: "Press Ctrl+C" in srv.log_text(), 10, "the demo's welcome")
        assert demo_logins(srv) == (logins, key)
        wait_until(lambda: tickets_called(data_dir) > 0, 30, "the simulator to call a ticket")
    with sqlite3.connect(data_dir / "qtraq.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 3
        assert conn.execute("SELECT COUNT(*) FROM display_keys").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM events WHERE type = 'clinic_created'").fetchone()[0] == 1


def tickets_called(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "qtraq.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM tickets WHERE called_at IS NOT NULL AND called_at != 0"
                                ).fetchone()[0])
