"""The wait shown to patients: the estimator's properties, what the engine learns from the calls
it sees, and the log replay of benchmarks/eta.py (its figures are the engine's own ETAs)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from qtraq_live import queue_engine, redis_keys
from qtraq_live.eta import Eta, estimate
from qtraq_live.queue_engine import QueueEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import eta as bench  # noqa: E402  (benchmarks/eta.py)

LEARNT = st.builds(lambda m, d, n, w: f"{m:.4f} {d:.4f} {n} 1764000000000 {w} 9",
                   st.one_of(st.just(0.0), st.floats(1.6, 9.0)), st.floats(0.0, 2.0), st.integers(0, 500),
                   st.sampled_from("01"))
QUEUE_STATS = st.fixed_dictionaries({
    "counters_open": st.integers(1, 8),
    "ema_s": st.integers(10, 7200),
    "eta": st.one_of(st.just(""), LEARNT),
    "pause_left_s": st.integers(0, 3600),
})


@given(QUEUE_STATS, st.integers(0, 300))
def test_the_range_holds_the_estimate_and_grows_with_the_people_ahead(q: dict[str, Any], ahead: int) -> None:
    here, behind = estimate(ahead, q), estimate(ahead + 1, q)
    assert q["pause_left_s"] <= here.low_s <= here.eta_s <= here.high_s
    assert behind.eta_s >= here.eta_s and behind.high_s >= here.high_s


@given(QUEUE_STATS, st.integers(0, 50))
def test_more_counters_shorten_the_wait_and_a_pause_adds_what_is_left_of_it(q: dict[str, Any], ahead: int) -> None:
    one, two = estimate(ahead, {**q, "counters_open": 1, "pause_left_s": 0}), \
        estimate(ahead, {**q, "counters_open": 2, "pause_left_s": 0})
    assert two.eta_s <= one.eta_s
    paused = estimate(ahead, {**q, "counters_open": 1, "pause_left_s": 600})
    assert paused == Eta(one.eta_s + 600, one.low_s + 600, one.high_s + 600)


def test_a_session_learnt_well_narrows_the_range() -> None:
    young = estimate(5, {"eta": f"{math.log(300):.4f} 0.4 0 1764000000000 1 9", "counters_open": 1})
    learnt = estimate(5, {"eta": f"{math.log(300):.4f} 0.4 40 1764000000000 1 9", "counters_open": 1})
    assert learnt.high_s - learnt.low_s < young.high_s - young.low_s


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()


@pytest.fixture
async def opd(aredis: aioredis.Redis) -> tuple[QueueEngine, Clock]:
    clock = Clock(MONDAY_9)
    eng = QueueEngine(aredis, clock=clock)
    await eng.create_clinic("c1", "Clinic One")
    await eng.create_queue("c1", "gp", "GP", "A", avg_service_s=600)
    return eng, clock


async def learnt(aredis: aioredis.Redis) -> dict[str, float]:
    """The queue's packed ``eta`` field: "level deviation cycles last_call waiting hour"."""
    packed = await aredis.hget(redis_keys.queue("gp"), "eta")
    assert packed is not None
    m, d, n = packed.split()[:3]
    return {"eta_m": float(m), "eta_d": float(d), "eta_n": float(n)}


async def run_cycles(eng: QueueEngine, clock: Clock, cycles: list[float]) -> None:
    for gap in cycles:
        await eng.next("gp", "1")
        clock.now += gap


async def test_the_pace_of_calls_is_learnt_and_shown(opd: tuple[QueueEngine, Clock], aredis: aioredis.Redis) -> None:
    eng, clock = opd
    tickets = [await eng.issue("gp") for _ in range(20)]
    await run_cycles(eng, clock, [120] * 12)
    await eng.next("gp", "1")
    view = await eng.ticket(tickets[13]["id"])
    assert view is not None and view["ahead"] == 0
    assert 90 <= view["eta_s"] <= 150 and view["eta_low_s"] < 120 < view["eta_high_s"]
    further = await eng.ticket(tickets[17]["id"])
    assert further is not None and 5 * 90 <= further["eta_s"] <= 5 * 150  # five cycles from now
    assert (await learnt(aredis))["eta_n"] == 12


async def test_a_doctor_waiting_for_patients_is_not_learnt(opd: tuple[QueueEngine, Clock],
                                                           aredis: aioredis.Redis) -> None:
    eng, clock = opd
    for _ in range(4):
        await eng.issue("gp")
    await run_cycles(eng, clock, [200, 200, 200])
    before = await learnt(aredis)
    assert await eng.next("gp", "1") is not None  # calls the last one: nobody is left waiting
    clock.now += 3000  # an empty hour: the doctor waits for patients
    await eng.issue("gp")
    await eng.next("gp", "1")
    after = await learnt(aredis)
    assert after["eta_n"] == before["eta_n"] + 1  # the 200 s before the queue ran dry, not the hour
    assert math.exp(after["eta_m"]) < 600


async def test_a_pause_between_two_calls_is_not_learnt(opd: tuple[QueueEngine, Clock], aredis: aioredis.Redis) -> None:
    eng, clock = opd
    for _ in range(5):
        await eng.issue("gp")
    await run_cycles(eng, clock, [200, 200])
    before = await learnt(aredis)
    await eng.pause("gp")
    clock.now += 1800
    await eng.resume("gp")
    await eng.next("gp", "1")
    assert await learnt(aredis) == {**before, "eta_n": before["eta_n"]}


async def test_one_long_consultation_moves_the_level_a_little(opd: tuple[QueueEngine, Clock],
                                                              aredis: aioredis.Redis) -> None:
    eng, clock = opd
    for _ in range(30):
        await eng.issue("gp")
    await run_cycles(eng, clock, [300] * 15)
    steady = math.exp((await learnt(aredis))["eta_m"])
    await run_cycles(eng, clock, [5400])  # a 90-minute visit
    await eng.next("gp", "1")
    after = math.exp((await learnt(aredis))["eta_m"])
    assert 250 < steady < 360 and after < 1.6 * steady


async def test_a_new_session_starts_from_what_that_hour_was_like(opd: tuple[QueueEngine, Clock],
                                                                 aredis: aioredis.Redis) -> None:
    eng, clock = opd
    for _ in range(60):
        await eng.issue("gp")
    await run_cycles(eng, clock, [150] * 20)  # Monday 09:00-09:50: a quick doctor
    clock.now = MONDAY_9 + 5 * 3600  # 14:00: a slow one in the afternoon
    await run_cycles(eng, clock, [1000] * 10)
    assert math.exp((await learnt(aredis))["eta_m"]) > 500
    clock.now = MONDAY_9 + 86400 + 600  # Tuesday 09:10: a new session
    await eng.next("gp", "1")
    state = await learnt(aredis)
    assert state["eta_n"] == 0 and 120 < math.exp(state["eta_m"]) < 190  # as Monday's 9 o'clock
    profile = await aredis.hgetall(redis_keys.eta_profile("gp"))
    # One entry per hour of the week and of the day that had calls: bounded, whatever the history.
    assert set(profile) == {f"{kind}{h}" for kind in "wh" for h in (9, 14, 15, 16)}


async def test_the_replay_reports_the_engines_own_etas(aredis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = {"am": [bench.Visit(9 * 3600 + i * 300 + (i % 3) * 40, None, None) for i in range(12)],
                "pm": [bench.Visit(14 * 3600 + i * 420, None, 14 * 3600 + i * 100 - 600) for i in range(8)]}
    records = await bench.replay(aredis, sessions, 600)
    # After each press: every later patient who has arrived by then (all of a session without arrivals).
    assert len(records) == sum(
        min(sum(1 for w in v[i + 1:] if w.arrival is None or w.arrival <= visit.start), 10)
        for v in sessions.values() for i, visit in enumerate(v))
    await aredis.flushdb()
    real = queue_engine.estimate
    monkeypatch.setattr(queue_engine, "estimate", lambda ahead, q: Eta(*(x + 1000 for x in real(ahead, q))))
    shifted = await bench.replay(aredis, sessions, 600)
    assert [r.ours for r in shifted] == [r.ours + 1000 for r in records]
    assert [(r.position, r.actual) for r in shifted] == [(r.position, r.actual) for r in records]
    out = bench.report(records, 600, bench.mean_gap(sessions))
    first = [r for r in records if r.position == 1]
    assert out["by_position"][0]["ours_mae_s"] == pytest.approx(sum(abs(r.ours - r.actual) for r in first) / len(first))
    assert out["by_position"][0]["naive_mae_s"] == pytest.approx(sum(abs(600 - r.actual) for r in first) / len(first))
    assert 0 <= out["coverage"] <= 1 and out["records"] == len(records)


def test_the_replay_command_writes_its_figures(tmp_path: Path) -> None:
    log, out = tmp_path / "log.csv", tmp_path / "out.json"
    env_run = [sys.executable, str(ROOT / "benchmarks" / "eta.py")]
    subprocess.run([*env_run, "--write-log", str(log), "--sessions", "6"], check=True, timeout=60)
    printed = subprocess.run([*env_run, "--log", str(log), "--json", str(out)], check=True, timeout=120,
                             capture_output=True, text=True).stdout
    figures = json.loads(out.read_text())
    assert set(figures) >= {"records", "ours_mae_s", "naive_mae_s", "constant_mae_s", "coverage", "by_position"}
    assert figures["records"] > 0 and [e["position"] for e in figures["by_position"]] == list(range(1, 11))
    assert "range coverage" in printed


def test_a_bad_log_is_refused_with_its_line(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("session,start\ns1,9:00:00\ns1,nine\n")
    with pytest.raises(SystemExit, match="line 3: start 'nine'"):
        bench.read_log(log)
    log.write_text("when,who\n")
    with pytest.raises(SystemExit, match="header"):
        bench.read_log(log)
