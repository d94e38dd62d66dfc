"""Engine and HTTP "next" throughput on one machine.

    python benchmarks/engine.py [--ops 20000] [--http-seconds 10] [--clients 50] [--rates 1000,1500]
                                [--skip-engine] [--skip-http] [--placement http|split|all]
                                [--baseline GIT_REF [--rounds 2]] [--server-log FILE]

Part 1 (engine): a redis-server pinned to core 0, a process on core 1 calling the engine through
the server's own Redis client (``redis_conn``); prints ops/s of ``issue`` and ``next`` through
the Lua scripts, awaited one by one, with 50 in flight (10 queues, 5 counters each: 50 desks),
and pipelined (EVALSHA batches of 100).
Part 2 (HTTP): ``qtraq-live serve`` (one HTTP process, the embedded Redis, the duties
process) with its HTTP process pinned to core 0 and 50 keep-alive clients on core 1 pressing
``POST /api/v1/queues/{q}/next`` with a bearer token. Redis and the duties process are left to
the scheduler (``--placement split`` pins them to core 1, beside the clients, as a 2-core
deployment would keep Redis off the HTTP process's core; ``--placement all`` pins them to
core 0 with the HTTP process). Three phases, each after the
primary's consumers caught up and an AOF rewrite: closed loop (each client presses again as
soon as it has its answer: the most the server does), then open loop at each ``--rates`` (presses
due at fixed times whatever the answers do; latency counts from when a press was due, so a
stall is not hidden). Each phase prints requests/s, p50/p99/max, CPU per press of each
process, other processes' CPU, Redis forks and Redis time per press by command.
With ``--baseline REF`` both parts run that commit's code (``git archive`` into a temporary
folder, first on the path) and this tree's in turn, ``--rounds`` times each, in the same run:
the development machine's speed has drifted by up to a factor of two within an hour, so only
figures taken side by side compare. Every run starts with a calibration line (a fixed Python
loop, a trivial Redis script) that says how fast the machine was, so runs on different days
can be put side by side.
Targets on the 2-core machine: engine >= 5,000 ops/s; HTTP next >= 1,500 req/s with
p99 <= 20 ms at 50 clients (docs/benchmarks.md says how this reads them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
import uvloop

ROOT = Path(__file__).resolve().parent.parent
# The engine part runs in a child process; for a --baseline it imports that commit's qtraq_live.
sys.path[:0] = [p for p in (os.environ.get("QTRAQ_BENCH_TREE"), str(ROOT / "benchmarks"), str(ROOT)) if p]

from fanout_stats import box_busy_seconds, group_cpu, role_of, tree  # noqa: E402
from trees import exported, tree_env  # noqa: E402
from qtraq_live.config import load_settings  # noqa: E402
from qtraq_live.queue_engine import QueueEngine  # noqa: E402
try:
    from qtraq_live.runtime.embedded_redis import EmbeddedRedis
    from qtraq_live.runtime.redis_conn import async_client
except ModuleNotFoundError:  # a --baseline from before the regrouping (issue #18) keeps them flat
    from qtraq_live.embedded_redis import EmbeddedRedis  # type: ignore[no-redef]  # regroup: keep
    from qtraq_live.redis_conn import async_client  # type: ignore[no-redef]  # regroup: keep


def pin(pid: int, core: int) -> None:
    """Keep the server and the load generator on separate cores when taskset exists."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def row(name: str, n: int, seconds: float, lat_ms: list[float] | None = None) -> None:
    line = f"{name:<48} {n:>8} ops {n / seconds:>10,.0f} ops/s"
    if lat_ms:
        line += f"   p50 {pct(lat_ms, .5):6.2f} ms  p99 {pct(lat_ms, .99):6.2f} ms  max {max(lat_ms):7.2f} ms"
    print(line, flush=True)


async def engine_part(ops: int, label: str) -> None:
    """The engine's Lua calls through the server's own Redis client (``redis_conn``)."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        assert server.process is not None
        pin(server.process.pid, 0)
        pin(os.getpid(), 1)
        r = async_client(load_settings({"QTRAQ_REDIS_URL": server.url, "QTRAQ_DATA_DIR": tmp}, resolve_secret=False))
        eng = QueueEngine(r)
        await eng.load_scripts()
        await eng.create_clinic("bench", "Bench")
        for q in range(10):
            await eng.create_queue("bench", f"q{q}", f"Q{q}", "A")
        prefix = f"{label} " if label else ""
        version = (await r.info("server"))["redis_version"]
        print(f"engine{' ' + label if label else ''}: redis {version}, {ops} ops per row, "
              "10 queues with 5 counters each", flush=True)

        def desk(i: int) -> tuple[str, str]:
            """Call ``i`` comes from counter (i // 10) % 5 + 1 of queue i % 10: 50 desks, each its own."""
            return f"q{i % 10}", str(i // 10 % 5 + 1)

        async def call(op: str, i: int) -> None:
            queue, counter = desk(i)
            await (eng.issue(queue) if op == "issue" else eng.next(queue, counter))

        for op in ("issue", "next"):
            t0 = time.perf_counter()
            lat: list[float] = []
            for i in range(ops):
                s = time.perf_counter()
                await call(op, i)
                lat.append((time.perf_counter() - s) * 1000)
            row(f"{prefix}{op}, awaited one by one", ops, time.perf_counter() - t0, lat)

        async def worker(op: str, n: int, w: int) -> None:
            for _ in range(n):
                await call(op, w)

        for op in ("issue", "next"):
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(op, ops // 50, w) for w in range(50)))
            row(f"{prefix}{op}, 50 in flight", ops // 50 * 50, time.perf_counter() - t0)

        # Pipelined: the script itself, EVALSHA in batches of 100 (what a bulk import would do).
        day = time.strftime("%Y%m%d")
        base = await r.incrby("qt:seq:ticket", ops)
        for op in ("issue", "next"):
            t0 = time.perf_counter()
            for start in range(0, ops, 100):
                async with r.pipeline(transaction=False) as pipe:
                    for i in range(start, min(ops, start + 100)):
                        queue, counter = desk(i)
                        args = ({"queue": queue, "id": str(base - ops + 1 + i), "priority": 0, "day": day,
                                 "token": f"benchtoken{i:022d}"} if op == "issue"
                                else {"queue": queue, "counter": counter})
                        pipe.evalsha(eng._scripts[op].sha, 0, op, json.dumps(args), int(time.time() * 1000), 50000)
                    await pipe.execute()
            row(f"{prefix}{op}, pipelined x100 (EVALSHA)", ops, time.perf_counter() - t0)
        await r.aclose()
        server.stop()


def engine_in_child(ops: int, source: Path | None, label: str) -> None:
    """The engine part in a process of its own, importing ``source``'s qtraq_live (this tree
    when None), so a baseline and this tree are measured by the same code."""
    env = {**os.environ, "QTRAQ_BENCH_TREE": str(source)} if source else dict(os.environ)
    subprocess.run([sys.executable, __file__, "--engine-only", "--ops", str(ops), "--label", label],
                   env=env, check=True)


REQUEST = (
    "POST /api/v1/queues/{queue}/next HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
    "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{body}"
)


async def http_client(port: int, token: str, queue: str, stop_at: float, lat: list[float], errors: list[int],
                      interval: float | None = None) -> None:
    """A minimal keep-alive HTTP/1.1 client: the load generator must not be the bottleneck.

    Closed loop (``interval`` None): the next press goes as soon as the answer is in. Open
    loop: presses are due every ``interval`` seconds and latency counts from when a press was
    due, so a slow answer that delays the next one is not hidden (no coordinated omission)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"counter": "1"})
    req = REQUEST.format(queue=queue, token=token, length=len(body), body=body).encode()
    due = time.perf_counter() + (random.random() * interval if interval else 0)
    while due < stop_at:
        if interval:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        s = due if interval else time.perf_counter()
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        done = time.perf_counter()
        lat.append((done - s) * 1000)

        if status != 200:
            errors.append(status)
        due = due + interval if interval else done
    writer.close()


async def caught_up(r: aioredis.Redis, clinic: str, timeout: float = 300) -> None:
    """Measure the steady state: wait until the primary's consumers (persister, notifier)
    have taken in the setup's events, so their backlog does not share the measured window."""
    stream = f"qt:c:{clinic}:events"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = (await r.xinfo_stream(stream))["last-generated-id"]
        groups = await r.xinfo_groups(stream)
        if groups and all(g["last-delivered-id"] == last and g["pending"] == 0 for g in groups):
            return
        await asyncio.sleep(0.2)
    raise SystemExit("the primary's consumers did not catch up")


async def settle_aof(r: aioredis.Redis) -> None:
    """Rewrite the AOF now, so the setup's growth does not trigger a rewrite (a fork that
    copies the whole data set, rare in a clinic's day) inside the measured window."""
    await r.bgrewriteaof()
    while True:
        await asyncio.sleep(0.2)
        info = await r.info("persistence")
        if not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]):
            return


def cli(data_dir: str, *args: str, stdin: str | None = None, source: Path | None = None) -> str:
    env = {**tree_env(source), "QTRAQ_DATA_DIR": data_dir}
    out = subprocess.run([sys.executable, "-m", "qtraq_live.cli", *args], env=env, input=stdin, cwd=source or ROOT,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


PLACEMENTS = {  # where Redis and the duties process go (the HTTP process is always on core 0)
    "http": "the HTTP process on core 0 (Redis and the duties process unpinned)",
    "split": "the HTTP process on core 0, Redis and the duties process on core 1",
    "all": "everything on core 0",
}


async def http_part(seconds: float, clients: int, rates: list[float], placement: str,
                    source: Path | None = None, label: str = "", log_path: str | None = None) -> None:
    import httpx

    with tempfile.TemporaryDirectory() as data_dir, open(log_path or os.devnull, "ab") as server_log:
        cli(data_dir, "user", "add", "bench", "--role", "admin", "--password-stdin", stdin="bench-password-123\n",
            source=source)
        token = cli(data_dir, "token", "create", "bench", source=source)
        env = {**tree_env(source), "QTRAQ_DATA_DIR": data_dir, "QTRAQ_PORT": "0"}
        server = subprocess.Popen([sys.executable, "-m", "qtraq_live.cli", "serve", "--port", "0"],
                                  env=env, cwd=source or ROOT, stdout=server_log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            serve_json = Path(data_dir) / "serve.json"
            deadline = time.monotonic() + 60
            while not serve_json.exists():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("qtraq-live serve did not start")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            port = json.loads(serve_json.read_text())["port"]
            for child in tree(server.pid):
                if placement == "all" or role_of(child) in ("serve", "http worker"):
                    pin(child, 0)
                elif placement == "split":
                    pin(child, 1)
            pin(os.getpid(), 1)
            base = f"http://127.0.0.1:{port}/api/v1"
            h = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(headers=h, timeout=30) as c:
                (await c.post(f"{base}/clinics", json={"id": "bench", "name": "Bench"})).raise_for_status()
                for q in range(clients):
                    (await c.post(f"{base}/clinics/bench/queues",
                                  json={"id": f"q{q}", "name": f"Q{q}", "prefix": "A"})).raise_for_status()
            # Enough waiting patients that every press calls someone: issue them through the engine.
            r = aioredis.from_url(f"unix://{Path(data_dir).resolve()}/redis/redis.sock", decode_responses=True)
            eng = QueueEngine(r)
            per_queue = int(seconds * (4000 + sum(rates)) / clients) + 100
            for _ in range(per_queue):
                await asyncio.gather(*(eng.issue(f"q{q}") for q in range(clients)))
            await r.aclose()
            warm = time.perf_counter() + 1
            await asyncio.gather(*(http_client(port, token, f"q{q}", warm, [], []) for q in range(clients)))
            print(f"http{' ' + label if label else ''}: qtraq-live serve, 1 HTTP process, embedded Redis; {PLACEMENTS[placement]}; "
                  f"{clients} keep-alive clients on core 1", flush=True)
            prefix = f"{label} " if label else ""
            phases = [(f"{prefix}as fast as answered", None)] + [
                (f"{prefix}open loop {rate:,.0f}/s", clients / rate) for rate in rates]
            for phase, interval in phases:
                r = aioredis.from_url(f"unix://{Path(data_dir).resolve()}/redis/redis.sock", decode_responses=True)
                await caught_up(r, "bench")
                await settle_aof(r)
                await r.config_resetstat()
                lat: list[float] = []
                errors: list[int] = []
                cpu0 = {**group_cpu(server.pid), "load generator": time.process_time()}
                box0 = box_busy_seconds()
                t0 = time.perf_counter()
                await asyncio.gather(*(http_client(port, token, f"q{q}", t0 + seconds, lat, errors, interval)
                                       for q in range(clients)))
                elapsed = time.perf_counter() - t0
                cpu1 = {**group_cpu(server.pid), "load generator": time.process_time()}
                ours = sum(cpu1.values()) - sum(cpu0.values())
                others = max(0.0, box_busy_seconds() - box0 - ours) / elapsed
                row(f"POST next x{clients}, {phase}", len(lat), elapsed, lat)
                rewrites = (await r.info("stats"))["total_forks"]
                stats = await r.info("commandstats")
                await r.aclose()
                print(f"  other processes' CPU meanwhile: {others:.0%} of a core; Redis forks (AOF rewrites): {rewrites}; non-200 answers: {len(errors)}; mean {statistics.mean(lat):.2f} ms; server CPU per press: "
                      + ", ".join(f"{name} {(cpu1[name] - cpu0.get(name, 0)) / max(1, len(lat)) * 1e6:.0f} us"
                                  for name in sorted(cpu1) if name not in ("serve", "gone")), flush=True)
                top = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:8]
                print("  Redis time per press by command: " + ", ".join(
                    f"{k.removeprefix('cmdstat_')} {v['usec'] / max(1, len(lat)):.0f} us ({v['calls'] / max(1, len(lat)):.2g}x)"
                    for k, v in top), flush=True)
        finally:
            stopping = time.monotonic()
            os.killpg(server.pid, 15)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait()
            print(f"  server stopped {time.monotonic() - stopping:.1f} s after SIGTERM (SIGKILL after 60 s)",
                  flush=True)


async def calibrate() -> None:
    """How fast this machine is right now: a fixed Python loop (this process) and a trivial
    Lua call in a fresh Redis (its own CPU time per call)."""
    started = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    loop_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        r = aioredis.from_url(server.url)
        sha = await r.script_load("return 1")
        await r.config_resetstat()
        for _ in range(5000):
            await r.evalsha(sha, 0)
        per_call = (await r.info("commandstats"))["cmdstat_evalsha"]["usec_per_call"]
        await r.aclose()
        server.stop()
    print(f"calibration: 5M-step Python loop {loop_s:.2f} s; trivial EVALSHA {per_call:.2f} us of Redis CPU",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--http-seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rates", default="1000,1500", help="presses per second of the open-loop runs, comma-separated")
    ap.add_argument("--placement", choices=sorted(PLACEMENTS), default="http",
                    help="where the embedded Redis and the duties process run: " + "; ".join(
                        f"{k}: {v}" for k, v in PLACEMENTS.items()))
    ap.add_argument("--baseline", metavar="GIT_REF", help="also run this commit's engine and server, in turn")
    ap.add_argument("--rounds", type=int, default=2, help="with --baseline: runs of each, alternating")
    ap.add_argument("--server-log", metavar="FILE", help="append the servers' output (JSON log lines) to FILE")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)  # engine_in_child's
    ap.add_argument("--label", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.engine_only:
        asyncio.run(engine_part(a.ops, a.label))
        return
    asyncio.run(calibrate())
    rates = [float(x) for x in a.rates.split(",") if x]
    with tempfile.TemporaryDirectory() as tmp:
        trees: list[tuple[str, Path | None]] = [("", None)]
        if a.baseline:
            trees = [(f"[{a.baseline}]", exported(a.baseline, Path(tmp))), ("[this tree]", None)]
        rounds = a.rounds if a.baseline else 1
        for part in ("engine", "http"):
            if a.skip_engine and part == "engine" or a.skip_http and part == "http":
                continue
            for round_ in range(rounds):
                for label, source in trees if round_ % 2 == 0 else trees[::-1]:
                    if part == "engine":
                        engine_in_child(a.ops, source, label)
                    else:
                        uvloop.run(http_part(a.http_seconds, a.clients, rates, a.placement, source, label,
                                             a.server_log))


if __name__ == "__main__":
    main()
