"""The two-hub deployment of docs/deploy/README.md, on one machine: one external redis-server
over TCP (not the embedded one), a primary (``serve --role all``), a hub (``serve --role hub``
with its own empty data dir) and two ``qtraq-live worker`` processes. A clinic flow runs with
sockets on both serving processes, notices go out once through the workers, and a dead worker
loses nothing.
Then the same processes behind docs/deploy/Caddyfile.compose, when Caddy is installed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.runtime.embedded_redis import SERVER_BIN
from support_serve import ServeProcess, clean_env
from tests.support_hub import open_ws, recv, recv_until, ws_url
from tests.support_notify import Sink, Workers, free_port, sink, wait_until  # noqa: F401

PASSWORD = "correct horse battery staple"
CLINIC, QUEUE = "c1", "gp"
DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


@pytest.fixture
def external_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server on a TCP port with AOF on, as a deployment runs it (docs/deploy)."""
    port, directory = free_port(), tmp_path / "redis"
    directory.mkdir()
    proc = subprocess.Popen([str(SERVER_BIN), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                             "--appendonly", "yes", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    try:
        wait_until(answers, "the external redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.kill()
        proc.wait()


@dataclass
class Deployment:
    primary: ServeProcess
    hub: ServeProcess
    workers: Workers
    env: dict[str, str]
    redis: redis.Redis  # decoded, for the notice ledger

    def cli(self, *args: str, stdin: str = "") -> str:
        """``qtraq-live ARGS`` as an operator runs it on the primary's host; its last line."""
        done = subprocess.run(["qtraq-live", *args], input=stdin, capture_output=True, text=True, timeout=60,
                              env=clean_env(self.primary.data_dir, **self.env))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def deployment(tmp_path: Path, external_redis: str, sink: Sink) -> Iterator[Deployment]:  # noqa: F811
    env = {"QTRAQ_REDIS_URL": external_redis, "QTRAQ_NOTIFY_SMS": sink.url(),
           "QTRAQ_PUBLIC_URL": "https://q.example.in", "QTRAQ_NOTIFY_JOB_TIMEOUT_S": "2"}
    workers = Workers(clean_env(tmp_path / "worker", **env), tmp_path)
    conn = redis.Redis.from_url(external_redis, decode_responses=True)
    try:
        with ServeProcess(tmp_path / "primary", env=env) as primary, \
                ServeProcess(tmp_path / "hub", env=env, args=["--role", "hub"]) as hub:
            workers.start(2)
            yield Deployment(primary, hub, workers, env, conn)
    finally:
        workers.stop_all()
        conn.close()


def notice_states(conn: redis.Redis) -> dict[str, str]:
    """Every notice in the ledger → its state (queued, sending, sent, failed, dropped)."""
    out = {}
    for key in conn.scan_iter(keys.notice("*")):
        if conn.type(key) == "hash":
            out[key] = conn.hget(key, "state")
    return out


def all_sent(conn: redis.Redis, expected: int) -> bool:
    states = notice_states(conn)
    return len(states) == expected and set(states.values()) == {"sent"}


def busiest(conn: redis.Redis, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The worker process that has finished the most jobs (from RQ's worker registry)."""
    done = {int(conn.hget(k, "pid") or 0): int(conn.hget(k, "successful_job_count") or 0)
            for k in conn.scan_iter("rq:worker:*") if conn.type(k) == "hash"}
    return max(procs, key=lambda p: done.get(p.pid, 0))


async def until(check: Callable[[], Any], what: str) -> None:
    """Poll a blocking check off the event loop, so the sockets keep reading meanwhile."""
    await asyncio.to_thread(wait_until, check, what)


async def test_two_hubs_two_workers_one_external_redis(deployment: Deployment, sink: Sink) -> None:  # noqa: F811
    d = deployment
    d.cli("user", "add", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    bearer = {"Authorization": f"Bearer {d.cli('token', 'create', 'admin')}"}
    rconn = d.redis
    async with httpx.AsyncClient(base_url=f"{d.primary.url}/api/v1", headers=bearer, timeout=10) as primary, \
            httpx.AsyncClient(base_url=f"{d.hub.url}/api/v1", headers=bearer, timeout=10) as hub:
        r = await primary.post("/clinics", json={"id": CLINIC, "name": "City Clinic"})
        assert r.status_code == 201, r.text
        r = await primary.post(f"/clinics/{CLINIC}/queues", json={"id": QUEUE, "name": "General", "prefix": "A"})
        assert r.status_code == 201, r.text

        # the hub refuses writes (the proxy sends them to the primary) and serves reads
        r = await hub.post(f"/clinics/{CLINIC}/queues", json={"id": "lab", "name": "Lab", "prefix": "L"})
        assert r.status_code == 421 and r.json()["error"]["code"] == "write_on_hub"
        r = await hub.get(f"/clinics/{CLINIC}")
        assert r.status_code == 200 and [q["id"] for q in r.json()["queues"]] == [QUEUE]

        key = d.cli("display-key", CLINIC)
        display = f"/ws/display/{CLINIC}?key={key}"
        async with await open_ws(ws_url(d.primary.url, display)) as screen_p, \
                await open_ws(ws_url(d.hub.url, display)) as screen_h:
            v0 = (await recv(screen_p))["version"]
            assert (await recv(screen_h))["version"] == v0
            mobile = "+919800000001"
            r = await primary.post(f"/queues/{QUEUE}/tickets", json={"name": "Asha Rao", "mobile": mobile,
                                                                     "notify": True})
            assert r.status_code == 201, r.text
            ticket = r.json()["ticket"]
            # a notice is re-checked before it is sent: "issued" must go out before the call
            await until(lambda: all_sent(rconn, 1), "the issued notice sent")
            track = f"/ws/t/{ticket['token']}"
            async with await open_ws(ws_url(d.primary.url, track)) as phone_p, \
                    await open_ws(ws_url(d.hub.url, track)) as phone_h:
                for phone in (phone_p, phone_h):
                    assert (await recv(phone))["position"] == 1
                r = await primary.post(f"/queues/{QUEUE}/next", json={"counter": "3"})
                assert r.status_code == 200 and r.json()["called"]["id"] == ticket["id"]
                v = (await hub.get(f"/queues/{QUEUE}")).json()["version"]

                raw = [[await s.recv() for _ in range(3)] for s in (screen_p, screen_h)]  # issued, called, call
                assert raw[0] == raw[1]
                assert [m["type"] for m in map(json.loads, raw[1])] == ["update", "update", "call"]
                for phone in (phone_p, phone_h):
                    got = await recv_until(phone, v)
                    assert [(m["type"], m["status"]) for m in got] == [("update", "called")]
                    assert (await recv(phone))["type"] == "call"

        r = await hub.get(f"/t/{ticket['token']}")
        assert r.status_code == 200 and r.json()["status"] == "called"
        # what docs/deploy/Caddyfile.compose sends to the hubs besides sockets: pages and reads
        for path in (f"/t/{ticket['token']}", f"/display/{CLINIC}?key={key}", "/readyz"):
            assert (await hub.get(d.hub.url + path)).status_code == 200, path

        # "issued" and "called" reach the SMS gateway once, through one of the workers
        await until(lambda: all_sent(rconn, 2), "the called notice sent")
        messages = [m["message"] for m in sink.to(mobile)]
        assert len(messages) == 2
        assert any("ahead" in m for m in messages) and any("counter 3" in m for m in messages)

        # the worker that did the sending dies: the other delivers everything later, each once
        d.workers.kill(busiest(rconn, d.workers.procs))
        later = [f"+91980000001{i}" for i in range(3)]
        for m in later:
            r = await primary.post(f"/queues/{QUEUE}/tickets", json={"mobile": m, "notify": True})
            assert r.status_code == 201, r.text
        await until(lambda: all_sent(rconn, 2 + len(later)), "the later issued notices sent")
        for counter in ("4", "5", "6"):  # three counters, so no call ends another (a stale call is dropped)
            r = await primary.post(f"/queues/{QUEUE}/next", json={"counter": counter})
            assert r.status_code == 200 and r.json()["called"] is not None
        await until(lambda: all_sent(rconn, 2 + 2 * len(later)), "the later called notices sent")
        assert [len(sink.to(m)) for m in later] == [2] * len(later)
        assert len(sink.received) == 2 + 2 * len(later)


# -- behind the proxy of docs/deploy ------------------------------------------------------------

@pytest.fixture
def proxy(tmp_path: Path, deployment: Deployment) -> Iterator[str]:
    """docs/deploy/Caddyfile.compose as written, with its service names pointed at this
    machine's primary and hub, on plain HTTP on a free port (no certificate to obtain here)."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    text = (DEPLOY / "Caddyfile.compose").read_text()
    hub, primary = f"127.0.0.1:{deployment.hub.port}", f"127.0.0.1:{deployment.primary.port}"
    for name, address in (("hub1:8000", hub), ("hub2:8000", hub), ("primary:8000", primary), ("{\n", "{\n\tadmin off\n")):
        assert name in text, name
        text = text.replace(name, address, 1)
    conf = tmp_path / "Caddyfile"
    conf.write_text(text)
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "DOMAIN": url, "ACME_EMAIL": "ops@example.org", "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "caddy-data"), "XDG_CONFIG_HOME": str(tmp_path / "caddy-config")}
    with open(tmp_path / "caddy.log", "wb") as log:
        proc = subprocess.Popen([caddy, "run", "--config", str(conf), "--adapter", "caddyfile"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def answers() -> bool:
        assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, "caddy to proxy")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def ws_count(base_url: str, kind: str) -> float:
    """Open sockets of one kind on one process, from its /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    found = re.search(rf'^qtraq_ws_connections{{kind="{kind}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_the_proxy_sends_sockets_and_reads_to_hubs_and_writes_to_the_primary(
        deployment: Deployment, proxy: str) -> None:
    d = deployment
    d.cli("user", "add", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    bearer = {"Authorization": f"Bearer {d.cli('token', 'create', 'admin')}"}
    async with httpx.AsyncClient(base_url=proxy, headers=bearer, timeout=10) as http:
        for path, body in (("/api/v1/clinics", {"id": CLINIC, "name": "City Clinic"}),
                           (f"/api/v1/clinics/{CLINIC}/queues", {"id": QUEUE, "name": "General", "prefix": "A"})):
            r = await http.post(path, json=body)
            assert r.status_code == 201, r.text  # a write reached the primary, not a hub (421)
        key = d.cli("display-key", CLINIC)
        async with await open_ws(ws_url(proxy, f"/ws/display/{CLINIC}?key={key}")) as screen:
            version = (await recv(screen))["version"]
            assert (ws_count(d.hub.url, "display"), ws_count(d.primary.url, "display")) == (1, 0)
            r = await http.post(f"/api/v1/queues/{QUEUE}/tickets", json={})
            token = r.json()["ticket"]["token"]
            for path in (f"/api/v1/t/{token}", f"/t/{token}", f"/display/{CLINIC}?key={key}"):
                assert (await http.get(path)).status_code == 200, path
            r = await http.post(f"/api/v1/queues/{QUEUE}/next", json={})
            assert r.status_code == 200 and r.json()["called"]["label"] == "A-001"
            got = await recv_until(screen, version + 2)
            assert [m["type"] for m in got] == ["update", "update"]
            assert (await http.delete(f"/api/v1/t/{token}")).status_code == 200  # a hub path, written: primary
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/readyz")).json()["role"] == "all"  # anything else: the primary
