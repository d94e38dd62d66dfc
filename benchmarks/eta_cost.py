"""What a ``next`` press costs the engine's Lua, counted in instructions with callgrind.

    python benchmarks/eta_cost.py [--presses 500] [--counters 5]

Starts the embedded redis-server under ``valgrind --tool=callgrind`` with instrumentation off, sets up
a clinic with one queue and enough waiting patients, then turns it on for exactly the
presses (``callgrind_control``) and prints the instructions per press. Instructions do not drift
with the machine's load the way timings do (docs/eta.md, docs/benchmarks.md). Each press is a
minute and a half after the last on a simulated clock, so the wait estimator learns from every
one, and every tenth crosses an hour (the hour profile's read and write are in the count).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qtraq_live.queue_engine import QueueEngine  # noqa: E402
from qtraq_live.runtime.embedded_redis import SERVER_BIN, EmbeddedRedis  # noqa: E402


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


async def presses(url: str, pid: int, n: int, counters: int) -> None:
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp())
    r = aioredis.from_url(url, decode_responses=True)
    eng = QueueEngine(r, clock=clock)
    await eng.load_scripts()
    await eng.create_clinic("c", "Clinic", timezone="Asia/Kolkata")
    await eng.create_queue("c", "q", "OPD", "A", avg_service_s=600)
    for _ in range(n + 50):
        await eng.issue("q")
    for i in range(counters):  # every counter holds a patient before the count starts
        await eng.next("q", str(i + 1))
    control("-i", "on", str(pid))
    for i in range(n):
        clock.now += 90 if i % 10 else 360
        await eng.next("q", str(i % counters + 1))
    control("-i", "off", str(pid))
    await r.aclose()


def main(n: int, counters: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        conf = Path(tmp) / "redis.conf"
        conf.write_text("\n".join(server.config_lines()) + "\n")
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                 f"--callgrind-out-file={out}", str(SERVER_BIN), str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not server.is_running():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("redis-server under valgrind did not start")
                time.sleep(0.2)
            asyncio.run(presses(server.url, proc.pid, n, counters))
        finally:
            proc.terminate()
            proc.wait(120)
        text = out.read_text()
        total = sum(int(m.group(1)) for m in re.finditer(r"^totals: (\d+)", text, re.M))
        if not total:
            raise SystemExit("callgrind counted nothing:\n" + text[-2000:])
    print(f"{n} next presses, {counters} counters: {total / n / 1000:.0f} k instructions a press")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presses", type=int, default=500)
    ap.add_argument("--counters", type=int, default=5)
    a = ap.parse_args()
    main(a.presses, a.counters)
