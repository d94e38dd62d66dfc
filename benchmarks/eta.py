"""How right is the wait a patient is shown?

    python benchmarks/eta.py --log FILE.csv [--json OUT.json] [--avg-service-s 600]
    python benchmarks/eta.py --write-log FILE.csv [--sessions 380] [--seed 1]
    python benchmarks/eta.py [--days 5] [--seed 1]          # synthetic mornings

**Replaying a consultation log** (``--log``): FILE has the header
``session,start[,end][,arrival][,weekday][,new]`` (times ``H:MM:SS``, one row per consultation;
without ``arrival`` every patient of a session is in the queue from its first start; ``weekday``
0-6 puts each session on its own day of the week, else sessions are a day apart; ``new`` 1 for a
first visit, 0 for a returning patient). ``benchmarks/hangu_log.py`` writes a real clinic's log
in this format. Each session is replayed through the real engine (embedded
Redis, a simulated clock injected here only): every consultation start is a ``next`` press at
that time, an ``end`` a ``done``. After every press, every waiting ticket's ETA as the engine
shows it (``queue_snapshot``: the same view the API and the sockets give) is compared with when
that patient really started. Printed and written to OUT.json: MAE, median and p90 of the error
by position (1-10) for ours, for the naive constant (position x the queue's ``avg_service_s``),
for the best constant in hindsight (position x the log's mean gap between starts) and, overall,
for the previous estimator ((ahead + 0.5) x the moving average of service times), and how
often the real start fell inside the shown range (``coverage``; the range is meant to hold 80 %).
Where the log says who is new, it also prints what knowing it would be worth (``KindPace``:
computed here, outside the engine, whose tickets do not carry it).

``--write-log`` writes a log of simulated outpatient sessions in that format (doctors of
different pace, late starts, the long consultation every morning has, tea breaks nobody pauses
for), for trying the replay where no real log is at hand.

**Synthetic mornings** (no ``--log``): arrivals in waves, log-normal service times whose mean
drifts through the morning, a second counter that opens and closes, a paused tea break; for
every served ticket the ETA given at issue is compared with the real wait.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import heapq
import math
import random
import statistics
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qtraq_live.errors import Conflict  # noqa: E402
from qtraq_live.queue_engine import QueueEngine  # noqa: E402
from qtraq_live.runtime.embedded_redis import EmbeddedRedis  # noqa: E402

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



# -- replaying a consultation log ------------------------------------------------------------

POSITIONS = 10  # the next ten patients: what a waiting room cares about
MONDAY = datetime(2026, 1, 5, tzinfo=ZoneInfo("Asia/Kolkata"))  # the replay's first day


@dataclass
class Visit:
    start: float  # seconds after the session's midnight
    end: float | None
    arrival: float | None
    weekday: int | None = None  # 0 (Monday) to 6: the session's day, when the log says it
    new: bool | None = None  # a first visit (True) or a returning patient (False), when known


def parse_time(text: str, line: int, name: str) -> float:
    try:
        h, m, sec = (int(x) for x in text.strip().split(":"))
    except ValueError:
        raise SystemExit(f"line {line}: {name} {text!r} is not H:MM:SS") from None
    if not (0 <= h < 48 and 0 <= m < 60 and 0 <= sec < 60):
        raise SystemExit(f"line {line}: {name} {text!r} is not H:MM:SS")
    return h * 3600 + m * 60 + sec


def parse_choice(text: str, line: int, name: str, allowed: range) -> int | None:
    """An optional small number (empty: not known)."""
    if not text.strip():
        return None
    if not text.strip().isdigit() or int(text) not in allowed:
        raise SystemExit(f"line {line}: {name} {text!r} is not one of {allowed.start}-{allowed.stop - 1}")
    return int(text)


def read_log(path: Path) -> dict[str, list[Visit]]:
    """Sessions in the order the file first names them, each one's visits by start time."""
    sessions: dict[str, list[Visit]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or ())
        if not {"session", "start"} <= fields:
            raise SystemExit(f"{path}: the header must be session,start[,end][,arrival][,weekday][,new]")
        for line, row in enumerate(reader, start=2):
            end = row.get("end") or ""
            arrival = row.get("arrival") or ""
            new = parse_choice(row.get("new") or "", line, "new", range(2))
            sessions.setdefault(row["session"], []).append(Visit(
                parse_time(row["start"], line, "start"),
                parse_time(end, line, "end") if end.strip() else None,
                parse_time(arrival, line, "arrival") if arrival.strip() else None,
                parse_choice(row.get("weekday") or "", line, "weekday", range(7)),
                None if new is None else bool(new)))
    for visits in sessions.values():
        visits.sort(key=lambda v: v.start)
    return sessions


def mean_gap(sessions: dict[str, list[Visit]]) -> float:
    gaps = [b.start - a.start for visits in sessions.values() for a, b in zip(visits, visits[1:])]
    return statistics.mean(gaps) if gaps else 600.0


@dataclass
class Record:
    position: int
    actual: float
    ours: float
    low: float
    high: float
    previous: float  # the estimator before this one: (ahead + 0.5) x the moving average of service times
    kinds: float = 1.0  # what knowing new/returning would change: ours x this (KindPace.factor)


class KindPace:
    """What a log's new/returning column is worth, measured outside the engine (tickets do not
    carry a patient's kind): the typical gap after a first visit and after a returning patient's,
    learnt from the sessions replayed before (so causal), as a factor on the engine's ETA for the
    mix of kinds among the patients a wait is made of."""

    def __init__(self) -> None:
        self.logs: dict[bool, list[float]] = {True: [], False: []}

    def learn(self, visits: list[Visit]) -> None:
        for a, b in zip(visits, visits[1:]):
            if a.new is not None and b.start > a.start:
                self.logs[a.new].append(math.log(b.start - a.start))

    def factor(self, kinds: list[bool | None]) -> float:
        """ours x factor: the patients' typical gaps over the typical gap of the mix seen so far."""
        if min(len(v) for v in self.logs.values()) < 30:
            return 1.0
        pace = {k: math.exp(statistics.mean(v)) for k, v in self.logs.items()}
        seen = sum(len(v) for v in self.logs.values())
        typical = sum(pace[k] * len(v) / seen for k, v in self.logs.items())
        return sum(typical if k is None else pace[k] for k in kinds) / (len(kinds) * typical)


async def replay_session(eng: QueueEngine, clock: Clock, queue: str, midnight: float,
                         visits: list[Visit], kinds: KindPace | None = None) -> list[Record]:
    """One session through the engine; a record per waiting ticket (positions 1-10) per press."""
    kinds = kinds or KindPace()
    first = visits[0].start
    steps: list[tuple[float, int, str, int]] = []  # (time, order at equal times, kind, visit)
    for i, v in enumerate(visits):
        steps.append((v.arrival if v.arrival is not None else first - 1, 0, "issue", i))
        steps.append((v.start, 2, "start", i))
        if v.end is not None:
            steps.append((v.end, 1, "end", i))
    steps.sort()
    ticket_of: dict[int, int] = {}
    visit_of: dict[int, int] = {}
    records: list[Record] = []
    for at, _, kind, i in steps:
        clock.now = midnight + at
        if kind == "issue" or (kind == "start" and i not in ticket_of):
            # Placed by its start: the engine calls patients in the order the clinic saw them.
            t = await eng.issue(queue, arrival_ms=int((midnight + first) * 1000) + i)
            ticket_of[i], visit_of[t["id"]] = t["id"], i
        if kind == "end":
            try:
                await eng.done(ticket_of[i])
            except Conflict:
                pass  # its counter already moved on
        elif kind == "start":
            called = await eng.next(queue, "1")
            assert called is not None and called["id"] == ticket_of[i], "the replay calls in start order"
            snap = await eng.queue_snapshot(queue)
            ema_s = (await eng.get_queue(queue) or {"ema_s": 0})["ema_s"]
            # A wait is made of the cycle just called and those of the patients ahead.
            made_of = [visits[i].new]
            for t in snap["waiting"][:POSITIONS]:
                v = visits[visit_of[t["id"]]]
                records.append(Record(t["position"], v.start - at, t["eta_s"], t["eta_low_s"], t["eta_high_s"],
                                      (t["ahead"] + 0.5) * ema_s, kinds.factor(made_of)))
                made_of.append(v.new)
    # Whoever is still waiting or called ends the session (the next one starts afresh).
    snap = await eng.queue_snapshot(queue)
    for t in snap["waiting"] + snap["now_serving"]:
        await eng.cancel(t["id"]) if t["status"] == "waiting" else await eng.done(t["id"])
    return records


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def errors(records: Iterable[Record], predict: Any) -> list[float]:
    return [abs(predict(r) - r.actual) for r in records]


def report(records: list[Record], naive_s: float, gap_s: float) -> dict[str, Any]:
    estimators = {"ours": lambda r: r.ours, "naive": lambda r: r.position * naive_s,
                  "constant": lambda r: r.position * gap_s, "previous": lambda r: r.previous}
    by_position = []
    for p in range(1, POSITIONS + 1):
        rows = [r for r in records if r.position == p]
        if not rows:
            continue
        entry: dict[str, Any] = {"position": p, "records": len(rows),
                                 "coverage": sum(r.low <= r.actual <= r.high for r in rows) / len(rows)}
        for name, predict in estimators.items():
            e = errors(rows, predict)
            entry[f"{name}_mae_s"] = statistics.mean(e)
            entry[f"{name}_median_s"] = statistics.median(e)
            entry[f"{name}_p90_s"] = quantile(e, 0.9)
        by_position.append(entry)
    return {
        "records": len(records),
        "ours_mae_s": statistics.mean(errors(records, estimators["ours"])),
        "naive_mae_s": statistics.mean(errors(records, estimators["naive"])),
        "constant_mae_s": statistics.mean(errors(records, estimators["constant"])),
        "previous_mae_s": statistics.mean(errors(records, estimators["previous"])),
        "kinds_mae_s": statistics.mean(errors(records, lambda r: r.ours * r.kinds)),
        "coverage": sum(r.low <= r.actual <= r.high for r in records) / len(records),
        "naive_service_s": naive_s, "mean_gap_s": gap_s,
        "by_position": by_position,
    }


def print_report(out: dict[str, Any], sessions: int) -> None:
    print(f"{sessions} sessions, {out['records']} comparisons (positions 1-{POSITIONS}, at every press); "
          f"mean gap {out['mean_gap_s']:.0f} s, naive {out['naive_service_s']:.0f} s a patient")
    print("minutes of absolute error: MAE / median / p90")
    print(f"{'pos':>3} {'n':>6}  {'ours':>17}  {'naive':>17}  {'best constant':>17}  {'in range':>8}")
    for e in out["by_position"]:
        cells = [f"{e[f'{k}_mae_s'] / 60:5.1f} {e[f'{k}_median_s'] / 60:5.1f} {e[f'{k}_p90_s'] / 60:5.1f}"
                 for k in ("ours", "naive", "constant")]
        print(f"{e['position']:>3} {e['records']:>6}  {cells[0]:>17}  {cells[1]:>17}  {cells[2]:>17}  "
              f"{e['coverage']:>7.0%}")
    print(f"all {out['records']:>6}  MAE ours {out['ours_mae_s'] / 60:.1f} min, naive {out['naive_mae_s'] / 60:.1f} "
          f"({out['ours_mae_s'] / out['naive_mae_s']:.2f}x), best constant {out['constant_mae_s'] / 60:.1f} "
          f"({out['ours_mae_s'] / out['constant_mae_s']:.2f}x), previous estimator {out['previous_mae_s'] / 60:.1f}; "
          f"range coverage {out['coverage']:.1%}", flush=True)
    if out["kinds_mae_s"] != out["ours_mae_s"]:
        print(f"knowing new/returning (outside the engine): {out['kinds_mae_s'] / 60:.1f} min", flush=True)


async def replay(r: aioredis.Redis, sessions: dict[str, list[Visit]], avg_service_s: int) -> list[Record]:
    """Every session through one queue of the engine on ``r``, a day apart (Mondays first)."""
    clock = Clock(0.0)
    eng = QueueEngine(r, clock=clock)
    await eng.load_scripts()
    await eng.create_clinic("replay", "Clinic", timezone="Asia/Kolkata")
    await eng.create_queue("replay", "replay-q", "OPD", "A", avg_service_s=avg_service_s)
    records: list[Record] = []
    kinds = KindPace()
    for midnight, visits in zip(session_days(sessions), sessions.values()):
        records += await replay_session(eng, clock, "replay-q", midnight, visits, kinds)
        kinds.learn(visits)
    return records


def session_days(sessions: dict[str, list[Visit]]) -> list[float]:
    """Each session's midnight (epoch seconds, Asia/Kolkata), from Monday 2026-01-05: a day
    apart, or, when the log gives weekdays, on the session's weekday, sharing the previous
    session's day when it starts after that one's last start (a morning and an afternoon)."""
    day, last, out = 0, -1.0, []  # day: days after MONDAY
    for n, visits in enumerate(sessions.values()):
        weekday = visits[0].weekday
        if weekday is None:
            day = n
        else:
            if visits[0].start <= last:
                day += 1
            day += (weekday - day) % 7
        last = visits[-1].start
        out.append((MONDAY + timedelta(days=day)).timestamp())
    return out


async def replay_log(path: Path, avg_service_s: int, json_out: Path | None) -> dict[str, Any]:
    sessions = read_log(path)
    if not sessions:
        raise SystemExit(f"{path}: no consultations")
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        r = aioredis.from_url(server.url, decode_responses=True)
        try:
            records = await replay(r, sessions, avg_service_s)
        finally:
            await r.aclose()
            server.stop()
    out = report(records, avg_service_s, mean_gap(sessions))
    print_report(out, len(sessions))
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=1))
    return out


def write_log(path: Path, sessions: int, seed: int, pace_s: float) -> None:
    """Simulated outpatient sessions: each with its own doctor's pace, a late start, heavy-tailed
    consultations (and now and then a very long one), a tea break in some, arrivals through the
    morning for half of them."""
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session", "start", "end", "arrival"])

        def hms(t: float) -> str:
            t = int(t)
            return f"{t // 3600}:{t % 3600 // 60:02d}:{t % 60:02d}"

        for s in range(sessions):
            pm = s % 2 == 1
            pace = rng.lognormvariate(math.log(pace_s), 0.35)  # the doctor of the day
            n = rng.randint(8, 30)
            t = (14 if pm else 9) * 3600 + rng.uniform(0, 3600)
            with_arrivals = rng.random() < 0.5
            arrivals = sorted(t - 1800 + rng.uniform(0, n * pace * 0.8) for _ in range(n))
            tea = rng.randint(n // 3, n) if rng.random() < 0.3 else -1
            for i in range(n):
                if with_arrivals:
                    t = max(t, arrivals[i])
                if i == tea:
                    t += rng.uniform(600, 1800)
                slow = 1 + 0.3 * i / n  # tiring through the session
                d = rng.lognormvariate(math.log(pace * slow), 0.55)
                if rng.random() < 0.03:
                    d *= rng.uniform(4, 8)
                end = t + d
                w.writerow([f"s{s}", hms(t), hms(end), hms(arrivals[i]) if with_arrivals else ""])
                t = end + rng.uniform(20, 90)  # the next patient comes in


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
    ap.add_argument("--log", type=Path, help="replay this consultation log (session,start[,end][,arrival])")
    ap.add_argument("--json", type=Path, help="with --log: write the figures here")
    ap.add_argument("--avg-service-s", type=int, default=600, help="the queue's configured service time (naive)")
    ap.add_argument("--write-log", type=Path, help="write a simulated consultation log here and stop")
    ap.add_argument("--sessions", type=int, default=380, help="with --write-log: how many sessions")
    ap.add_argument("--pace-s", type=float, default=400, help="with --write-log: a typical doctor's time a patient")
    ap.add_argument("--days", type=int, default=5, help="synthetic mornings")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.write_log:
        write_log(a.write_log, a.sessions, a.seed, a.pace_s)
    elif a.log:
        asyncio.run(replay_log(a.log, a.avg_service_s, a.json))
    else:
        asyncio.run(main(a.days, a.seed))
