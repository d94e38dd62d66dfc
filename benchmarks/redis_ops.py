"""Redis commands per ticket and per "next" press, counted by Redis itself, for sizing Redis
(docs/deploy/README.md, "Sizing").

    python benchmarks/redis_ops.py [--tickets 100] [--hubs 2] [--notify]

It starts one redis-server on TCP (AOF on), a primary (``qtraq-live serve``) and ``--hubs``
hub processes (``serve --role hub``) on it, opens a display socket on every process and each
patient's socket on a hub, and then reads ``INFO commandstats`` around three phases: idle
(background polling, per second), issuing ``--tickets`` tickets, and as many presses, one at a
time (each waits until every display has its update, so nothing is batched: the worst case per
press). ``--notify`` gives every ticket a mobile and ``notify: true``, starts two ``qtraq-live
worker`` processes and a local HTTP sink as the SMS gateway, and waits for every notice
("issued", "ahead", "called") at the sink. The idle rate is subtracted from each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout_servers import Process, Redis, environment, wait_until  # noqa: E402

NOTIFY_AHEAD = 3  # the queue default: a ticket issued further back is told once when it gets here


class Sink(ThreadingHTTPServer):
    """The SMS gateway: counts the JSON posts Apprise's ``json://`` makes."""

    def __init__(self) -> None:
        self.received = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.lock:
                    sink.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self) -> str:
        return f"json://127.0.0.1:{self.server_address[1]}/send?:to={{to}}"


def serve(role: str, data_dir: Path, env: dict[str, str], log: Path) -> tuple[Process, str]:
    """``qtraq-live serve --role ROLE --port 0``; its URL once it listens."""
    proc = Process(["qtraq-live", "serve", "--role", role, "--port", "0"], log, {**env, "QTRAQ_DATA_DIR": str(data_dir)})
    serve_json = data_dir / "serve.json"
    info = wait_until(lambda: serve_json.exists() and json.loads(serve_json.read_text() or "null"), f"serve {role}")
    return proc, str(info["url"])


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(["qtraq-live", *args], input=stdin, capture_output=True, text=True,
                          env=environment(env), check=True)
    return done.stdout.strip().splitlines()[-1]


async def post(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(url, json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:200]}")
    return dict(response.json())


def commandstats(conn: redis.Redis) -> Counter[str]:
    stats = conn.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


def per(delta: Counter[str], idle: Counter[str], seconds: float, n: int) -> dict[str, float]:
    """Calls per operation of each command, with the idle background of that span removed."""
    out = {cmd: (calls - idle[cmd] * seconds) / n for cmd, calls in delta.items() if cmd != "info"}
    return {cmd: v for cmd, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.05}


def report(title: str, rates: dict[str, float]) -> None:
    print(f"\n{title}: {sum(rates.values()):.1f} commands")
    for cmd, v in rates.items():
        print(f"  {cmd:<16} {v:6.2f}")


async def until_version(sockets: list[ClientConnection], version: int) -> None:
    for ws in sockets:
        while json.loads(await asyncio.wait_for(ws.recv(), 10)).get("version", 0) < version:
            pass


async def measure(args: argparse.Namespace, work: Path) -> None:
    server = Redis(work / "redis")
    conn = redis.Redis(port=server.port)
    sink = Sink() if args.notify else None
    env = {"QTRAQ_REDIS_URL": server.url, **({"QTRAQ_NOTIFY_SMS": sink.url()} if sink else {})}
    on_primary = {**env, "QTRAQ_DATA_DIR": str(work / "serve0")}  # the CLI works on the primary's record
    procs: list[Process] = []  # stopped in reverse
    bases: list[str] = []  # every serving process's URL, the primary first
    try:
        for i in range(args.hubs + 1):
            proc, url = serve("hub" if i else "all", work / f"serve{i}", env, work / f"serve{i}.log")
            procs.append(proc)
            bases.append(url)
        primary = bases[0]
        for i in range(2 if sink else 0):
            procs.append(Process(["qtraq-live", "worker"], work / f"worker{i}.log",
                                 {**env, "QTRAQ_DATA_DIR": str(work / f"worker{i}")}))
        cli(on_primary, "user", "add", "ops", "--role", "admin", "--password-stdin", stdin="ops-password-1234\n")
        bearer = {"Authorization": f"Bearer {cli(on_primary, 'token', 'create', 'ops')}"}
        async with httpx.AsyncClient(headers=bearer, timeout=10) as http:
            await post(http, f"{primary}/api/v1/clinics", {"id": "c1", "name": "Clinic"})
            await post(http, f"{primary}/api/v1/clinics/c1/queues", {"id": "gp", "name": "OPD", "prefix": "A"})
            key = cli(on_primary, "display-key", "c1")
            displays = [await connect(b.replace("http", "ws", 1) + f"/ws/display/c1?key={key}", compression=None)
                        for b in bases]
            for ws in displays:
                await ws.recv()  # snapshot

            idle_from, t0 = commandstats(conn), time.monotonic()
            await asyncio.sleep(args.idle)  # a measured span, not a wait for a condition
            idle_s = time.monotonic() - t0
            idle = commandstats(conn) - idle_from
            idle_rate = Counter({k: v / idle_s for k, v in idle.items()})

            n = args.tickets
            before, t0 = commandstats(conn), time.monotonic()
            tokens = []
            for i in range(n):
                body = {"mobile": f"+9198{i:08d}", "notify": True} if sink else {}
                tokens.append((await post(http, f"{primary}/api/v1/queues/gp/tickets", body))["ticket"]["token"])
            if sink:
                await asyncio.to_thread(wait_until, lambda: sink.received >= n, "the issued notices", 120)
            issued = per(commandstats(conn) - before, idle_rate, time.monotonic() - t0, n)

            version = int((await http.get(f"{primary}/api/v1/queues/gp")).json()["version"])
            await until_version(displays, version)
            hub_base = bases[-1].replace("http", "ws", 1)
            patients = [await connect(f"{hub_base}/ws/t/{t}", compression=None) for t in tokens]
            for ws in patients:
                await ws.recv()

            before, t0 = commandstats(conn), time.monotonic()
            for i in range(n):
                await post(http, f"{primary}/api/v1/queues/gp/next", {"counter": "1"})
                await until_version(displays, version + i + 1)
                if sink:  # the call must go out before the next press ends it (a stale call is dropped)
                    told = n + (i + 1) + min(i + 1, max(0, n - 1 - NOTIFY_AHEAD))  # issued, called, ahead
                    await asyncio.to_thread(wait_until, lambda: sink.received >= told, "the called notice", 30)
            pressed = per(commandstats(conn) - before, idle_rate, time.monotonic() - t0, n)
            for ws in displays + patients:
                await ws.close()

        print(f"{n} tickets, {n} presses; a primary and {args.hubs} hub process(es), a display on each, "
              f"{n} patient sockets on {'a hub' if args.hubs else 'the primary'}; notices {'on (SMS)' if sink else 'off'}")
        report("idle, per second", {k: v for k, v in sorted(idle_rate.items(), key=lambda kv: -kv[1]) if v >= 0.05})
        report("per ticket issued", issued)
        report("per press", pressed)
    finally:
        for proc in reversed(procs):
            proc.stop()
        conn.close()
        server.stop()
        if sink:
            sink.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100, help="tickets issued, then as many presses")
    parser.add_argument("--hubs", type=int, default=2, help="hub processes beside the primary")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle background to subtract")
    parser.add_argument("--notify", action="store_true", help="SMS notices through two workers to a local sink")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(args, Path(tmp)))


if __name__ == "__main__":
    main()
