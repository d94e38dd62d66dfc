"""Each fast path against its public-API fallback, side by side (``qtraq_live/runtime/fastpaths.py``).

    python benchmarks/fastpaths.py [--ops 3000] [--rounds 3] [--fanout] [--json FILE]

Redis side (``redis_pool``, ``redis_write``): a child process per variant calls the engine
through the server's own Redis client (``redis_conn.async_client``) on one embedded
redis-server: ``issue`` and ``next`` awaited one by one, then 50 in flight. It reports the
child's own CPU time per call (``time.process_time``), which is what these paths save and
which, unlike ops/s, another process's load on the machine hardly moves. Variants run in turn,
``--rounds`` times, with ``QTRAQ_FORCE_FALLBACKS`` naming what is off; the table shows the
median per variant and how much dearer the fallback is.

Fan-out side (``ws_lean``, ``ws_write``, ``hub_eager``; ``--fanout``): ``fanout.py``'s city
scenario (1,000 sockets, 10 s) on qtraq-live alone, per variant: the hub's CPU %, KiB per
idle socket and the p99 press-to-screen latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from qtraq_live.config import load_settings  # noqa: E402
from qtraq_live.queue_engine import QueueEngine  # noqa: E402
from qtraq_live.runtime.embedded_redis import EmbeddedRedis  # noqa: E402
from qtraq_live.runtime.redis_conn import async_client  # noqa: E402

FORCE_ENV = "QTRAQ_FORCE_FALLBACKS"
REDIS_VARIANTS = ["", "redis_pool", "redis_write", "redis_pool,redis_write"]
FANOUT_VARIANTS = ["", "ws_write", "hub_eager", "ws_lean,ws_write"]
ROWS = ("issue, one by one", "next, one by one", "issue, 50 in flight", "next, 50 in flight")


async def engine_cpu(url: str, ops: int) -> dict[str, float]:
    """CPU µs of this process per engine call, per row."""
    client = async_client(load_settings({"QTRAQ_REDIS_URL": url}))
    await client.flushall()
    engine = QueueEngine(client)
    await engine.load_scripts()
    await engine.create_clinic("b", "Bench")
    queues = [f"q{i}" for i in range(10)]
    for q in queues:
        await engine.create_queue("b", q, q.upper(), "A")
    out: dict[str, float] = {}

    async def row(name: str, call: object, inflight: int) -> None:
        started = time.process_time()
        if inflight == 1:
            for i in range(ops):
                await call(i)  # type: ignore[operator]
        else:
            for start in range(0, ops, inflight):
                await asyncio.gather(*(call(i) for i in range(start, min(ops, start + inflight))))  # type: ignore[operator]
        out[name] = (time.process_time() - started) / ops * 1e6

    await row(ROWS[0], lambda i: engine.issue(queues[i % 10]), 1)
    await row(ROWS[1], lambda i: engine.next(queues[i % 10], str(i % 5)), 1)
    await row(ROWS[2], lambda i: engine.issue(queues[i % 10]), 50)
    await row(ROWS[3], lambda i: engine.next(queues[i % 10], str(i % 5)), 50)
    await client.aclose()
    return out


def run_child(url: str, ops: int, variant: str) -> dict[str, float]:
    env = {**os.environ, FORCE_ENV: variant or "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", url, "--ops", str(ops)], env=env,
                         capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def redis_side(ops: int, rounds: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        try:
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in REDIS_VARIANTS}
            for _ in range(rounds):
                for variant in REDIS_VARIANTS:
                    runs[variant].append(run_child(server.url, ops, variant))
        finally:
            server.stop()
    return {v: {r: statistics.median(run[r] for run in rs) for r in ROWS} for v, rs in runs.items()}


def fanout_side(rounds: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in FANOUT_VARIANTS}
    for _ in range(rounds):
        for variant in FANOUT_VARIANTS:
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                env = {**os.environ, FORCE_ENV: variant or "0"}
                subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--scenario", "city",
                                "--servers", "qtraq", "--sockets", "1000", "--duration", "10", "--json", f.name],
                               env=env, check=True, stdout=subprocess.DEVNULL)
                rows = json.loads(Path(f.name).read_text())
            row = rows[0]
            deliveries = sorted(row["deliveries"]) or [0.0]
            runs[variant].append({"cpu%": float(row["cpu_pct"]), "KiB/sock": float(row["kib_per_socket"]),
                                  "p99 ms": deliveries[min(len(deliveries) - 1, int(len(deliveries) * 0.99))]})
    return {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}


def table(title: str, figures: dict[str, dict[str, float]], unit: str) -> str:
    base = figures[""]
    cols = list(base)
    lines = [title, f"{'off (fallback)':<24}" + "".join(f"{c:>22}" for c in cols)]
    for variant, row in figures.items():
        cells = []
        for c in cols:
            change = (row[c] / base[c] - 1) * 100 if base[c] else 0.0
            cells.append(f"{row[c]:>10.1f} {unit} {change:+6.1f}%" if variant else f"{row[c]:>10.1f} {unit}       ")
        lines.append(f"{variant or 'none (all fast)':<24}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fanout", action="store_true", help="also the fan-out paths (fanout.py, ~1 min a run)")
    ap.add_argument("--skip-redis", action="store_true", help="only the fan-out paths")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(engine_cpu(args.child, args.ops))))
        return
    result: dict[str, object] = {}
    if not args.skip_redis:
        result["redis"] = redis_side(args.ops, args.rounds)
        print(table("engine calls: CPU µs of the calling process per call (median of rounds)", result["redis"], "µs"))  # type: ignore[arg-type]
    if args.fanout:
        result["fanout"] = fanout_side(args.rounds)
        print(table("fan-out, city 1,000 sockets (median of rounds)", result["fanout"], ""))  # type: ignore[arg-type]
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
