"""Notices end to end: request -> notifier -> RQ -> 2 worker processes -> Apprise -> local sink.

    python benchmarks/notify.py [--notices 1000] [--workers 2]

An embedded Redis in a temporary directory, the notifier duty in this process, ``--workers``
``qtraq-live worker`` processes, and a local HTTP sink (this process, its own thread) standing
in for the SMS gateway behind ``json://``. Every notice is a verification code to its own
number, asked for with ``enqueue_account_notice`` (the path the accounts area uses). Prints
notices/s, enqueue-to-delivery p50/p99/max, duplicates and losses (both must be 0).
Target on the 2-core machine: all 1,000 delivered within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qtraq_live.config import load_settings  # noqa: E402
from qtraq_live.runtime.duties import open_context  # noqa: E402
from qtraq_live.runtime.embedded_redis import EmbeddedRedis  # noqa: E402
from qtraq_live.workers.notices import enqueue_account_notice  # noqa: E402
from qtraq_live.workers.notifier import run_notifier  # noqa: E402

TARGET_S = 10.0


class Sink:
    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with sink.lock:
                    sink.arrivals.setdefault(body["to"], []).append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.arrivals.values())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def run(n: int, n_workers: int, tmp: Path) -> int:
    sink = Sink()
    http = ThreadingHTTPServer(("127.0.0.1", 0), sink.handler())
    threading.Thread(target=http.serve_forever, daemon=True).start()
    redis_server = EmbeddedRedis(tmp / "redis")
    redis_server.start()
    env = {"QTRAQ_DATA_DIR": str(tmp / "data"), "QTRAQ_REDIS_URL": redis_server.url, "QTRAQ_LOG_LEVEL": "warning",
           "QTRAQ_PUBLIC_URL": "https://q.example.in",
           "QTRAQ_NOTIFY_SMS": f"json://127.0.0.1:{http.server_address[1]}/send?:to={{to}}"}
    settings = load_settings(env)
    procs = [subprocess.Popen([sys.executable, "-m", "qtraq_live.cli", "worker"], env={**os.environ, **env},
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
             for _ in range(n_workers)]
    stop = asyncio.Event()
    try:
        probe = redis.Redis.from_url(redis_server.url)
        while probe.scard("rq:workers") < n_workers:  # started and listening: not part of the timing
            await asyncio.sleep(0.05)
        probe.close()
        async with open_context(settings) as ctx:
            notifier = asyncio.create_task(run_notifier(ctx, stop))
            await asyncio.sleep(0.3)  # the notifier's consumer groups exist before the first request
            sent_at: dict[str, float] = {}
            t0 = time.time()
            for i in range(n):
                to = f"+9190{i:08d}"
                sent_at[to] = time.time()
                await enqueue_account_notice(ctx.redis, kind="verify_code", to=to, channel="sms",
                                             context={"code": f"{i:06d}", "minutes": 10}, lang="en",
                                             dedupe_key=f"bench:{i}", subject=f"account:{i}")
            enqueued = time.time() - t0
            deadline = time.monotonic() + 60
            while sink.count() < n and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # late duplicates would show up here
            stop.set()
            await notifier
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        http.shutdown()
        redis_server.stop()
    delivered = {to: times for to, times in sink.arrivals.items() if to in sent_at}
    duplicates = sum(len(t) - 1 for t in delivered.values())
    losses = n - len(delivered)
    latencies = [(times[0] - sent_at[to]) * 1000 for to, times in delivered.items()]
    last = max((t[0] for t in delivered.values()), default=t0)
    total_s = last - t0
    print(f"notices {n}  workers {n_workers}  enqueued in {enqueued:.2f} s")
    print(f"delivered {len(delivered)} in {total_s:.2f} s  ->  {len(delivered) / max(total_s, 1e-9):,.0f} notices/s")
    if latencies:
        print(f"enqueue-to-delivery  p50 {pct(latencies, .5):.0f} ms  p99 {pct(latencies, .99):.0f} ms  "
              f"max {max(latencies):.0f} ms")
    print(f"duplicates {duplicates}  losses {losses}")
    ok = duplicates == 0 and losses == 0 and total_s <= TARGET_S
    print(f"target: all delivered within {TARGET_S:.0f} s, none twice, none lost -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notices", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(args.notices, args.workers, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
