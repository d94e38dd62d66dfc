"""How good is the ETA a patient is shown when they get their ticket?

    python benchmarks/eta.py [--days 5] [--seed 1]

Replays synthetic clinic mornings through the real engine (embedded Redis, a simulated
clock): arrivals in waves, log-normal service times whose mean drifts through the morning and
differs from the configured average, a second counter that opens and closes, a tea break that
pauses the queue. For every served ticket it compares the ETA given at issue with the actual
wait until the call, for our estimator and for the naive constant baseline
(people ahead × the configured average service time, one counter). Prints the mean absolute
error (MAE) and the median absolute error of both, per day and overall.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qtraq_live.embedded_redis import EmbeddedRedis  # noqa: E402
from qtraq_live.errors import Conflict  # noqa: E402
from qtraq_live.queue_engine import QueueEngine  # noqa: E402

CONFIGURED_AVG_S = 300
OPEN, CLOSE = 9 * 3600, 13 * 3600


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(order=True)
class Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    counter: str = field(default="", compare=False)


def arrival_rate(t: float) -> float:
    """Patients per second: a morning wave peaking around 10:00, another after 11:30."""
    h = t / 3600
    return (22 * math.exp(-((h - 10.0) ** 2) / 0.5) + 14 * math.exp(-((h - 11.8) ** 2) / 0.3) + 8) / 3600


def service_mean(t: float) -> float:
    """The doctor starts quick and slows down as the morning wears on (configured: 300 s)."""
    h = t / 3600
    return 170 + 60 * (h - 9)


async def simulate_day(eng: QueueEngine, clock: Clock, rng: random.Random, day: int) -> list[tuple[float, float, float]]:
    """Returns (actual wait, our eta, naive eta) for every ticket called that day."""
    midnight = 1_764_000_000 + day * 86400 - 5.5 * 3600  # a Kolkata midnight, in epoch seconds
    queue = f"gp{day}"
    await eng.create_queue("c", queue, "GP", "A", avg_service_s=CONFIGURED_AVG_S)
    events: list[Event] = []
    seq = 0

    def push(at: float, kind: str, counter: str = "") -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, Event(at, seq, kind, counter))

    t = OPEN - 1800.0  # patients start arriving half an hour before the doctor
    while t < CLOSE - 1800:
        t += rng.expovariate(arrival_rate(t))
        push(t, "arrive")
    push(OPEN, "free", "1")
    push(OPEN + 3600, "free", "2")  # a second doctor joins at 10:00 …
    push(11 * 3600, "pause")
    push(11 * 3600 + 900, "resume")  # … after a 15 minute tea break
    issued: dict[int, tuple[float, int, int]] = {}  # id -> (issued at, our eta, naive eta)
    results = []
    idle: set[str] = set()
    serving: dict[str, int] = {}  # counter -> ticket being seen there
    paused = False
    while events:
        ev = heapq.heappop(events)
        clock.now = midnight + ev.at
        if ev.kind == "arrive":
            tk = await eng.issue(queue)
            issued[tk["id"]] = (ev.at, tk["eta_s"], tk["ahead"] * CONFIGURED_AVG_S)
            for c in sorted(idle):
                idle.discard(c)
                push(ev.at, "free", c)
        elif ev.kind in ("pause", "resume"):
            paused = ev.kind == "pause"
            await (eng.pause(queue) if paused else eng.resume(queue))
            if not paused:
                for c in sorted(idle):
                    idle.discard(c)
                    push(ev.at, "free", c)
        elif ev.kind == "free":
            if ev.counter == "2" and ev.at >= 12 * 3600:  # the second doctor leaves at noon
                if "2" in serving:
                    await eng.done(serving.pop("2"))
                continue
            if paused or ev.at >= CLOSE + 7200:
                idle.add(ev.counter)
                continue
            try:
                called = await eng.next(queue, ev.counter)
            except Conflict:
                idle.add(ev.counter)
                continue
            if called is None:
                serving.pop(ev.counter, None)
                idle.add(ev.counter)
                continue
            serving[ev.counter] = called["id"]
            at, ours, naive = issued.pop(called["id"])
            results.append((ev.at - at, float(ours), float(naive)))
            push(ev.at + rng.lognormvariate(math.log(service_mean(ev.at)), 0.45), "free", ev.counter)
    return results


def summary(name: str, rows: list[tuple[float, float, float]]) -> tuple[float, float]:
    ours = [abs(a - o) for a, o, _ in rows]
    naive = [abs(a - n) for a, _, n in rows]
    mo, mn = statistics.mean(ours), statistics.mean(naive)
    print(f"{name:<10} {len(rows):>5}  {mo / 60:8.1f}  {statistics.median(ours) / 60:8.1f}  "
          f"{mn / 60:8.1f}  {statistics.median(naive) / 60:8.1f}  {mn / mo:6.2f}x", flush=True)
    return mo, mn


async def main(days: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        r = aioredis.from_url(server.url, decode_responses=True)
        clock = Clock(1_764_000_000.0)
        eng = QueueEngine(r, clock=clock)
        await eng.load_scripts()
        await eng.create_clinic("c", "Clinic")
        rng = random.Random(seed)
        print("minutes of absolute error between the ETA at issue and the real wait", flush=True)
        print(f"{'day':<10} {'served':>5}  {'our MAE':>8}  {'our med':>8}  {'naiveMAE':>8}  {'naivemed':>8}  {'gain':>6}")
        everything = []
        for d in range(days):
            rows = await simulate_day(eng, clock, rng, d)
            summary(f"day {d + 1}", rows)
            everything += rows
        summary("all days", everything)
        await r.aclose()
        server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    asyncio.run(main(a.days, a.seed))
