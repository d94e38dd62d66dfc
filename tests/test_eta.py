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

from qtraq_live import queue_engine
from qtraq_live.engine import redis_keys
from qtraq_live.engine.eta import Eta, estimate
from qtraq_live.queue_engine import QueueEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import eta as bench  # noqa: E402  (benchmarks/eta.py)
import hangu_log  # noqa: E402  (benchmarks/hangu_log.py)

LEARNT = st.builds(lambda m, d, n, v, w: f"{m:.4f} {d:.4f} {n} {v:.5f} 0.1 {m:.4f} 0 8 0 1764000000000 {w} 9",
                   st.one_of(st.just(0.0), st.floats(1.6, 9.0)), st.floats(0.0, 2.0), st.integers(0, 500),
                   st.floats(0.0, 1.5), st.sampled_from("01"))
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


def packed(level_s: float, cycles: int, level_var: float) -> str:
    """A queue's ``eta`` field (lib.lua's eta_pack) with this level, count and level variance."""
    m = math.log(level_s)
    return f"{m:.4f} 0.4000 {cycles} {level_var:.5f} 0.1 {m:.4f} 0 8 0 1764000000000 1 9"


def test_a_level_known_better_narrows_the_range_not_the_estimate() -> None:
    young = estimate(5, {"eta": packed(300, 0, 0.12), "counters_open": 1})
    learnt = estimate(5, {"eta": packed(300, 40, 0.01), "counters_open": 1})
    assert learnt.high_s - learnt.low_s < young.high_s - young.low_s
    assert learnt.eta_s == young.eta_s


def test_a_state_of_an_older_layout_is_shown_as_nothing_learnt() -> None:
    old = estimate(3, {"eta": f"{math.log(120):.4f} 0.4 12 1764000000000 1 9", "counters_open": 1, "ema_s": 600})
    assert old == estimate(3, {"counters_open": 1, "ema_s": 600})


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


async def learnt(aredis: aioredis.Redis, queue: str = "gp") -> dict[str, float]:
    """The queue's packed ``eta`` field: "level deviation cycles level_var between ..."."""
    packed = await aredis.hget(redis_keys.queue(queue), "eta")
    assert packed is not None
    m, d, n, v, b = packed.split()[:5]
    return {"eta_m": float(m), "eta_d": float(d), "eta_n": float(n), "eta_v": float(v), "eta_b": float(b)}


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
    # One entry per hour of the week and of the day that had calls, and one per load a session
    # started with (half-octaves of patients waiting): bounded, whatever the history.
    assert {k for k in profile if k[0] in "wh"} == {f"{kind}{h}" for kind in "wh" for h in (9, 14, 15, 16)}
    assert {k for k in profile if k[0] == "l"} <= {f"l{b}" for b in range(20)}


async def test_a_call_out_of_order_learns_by_the_clinics_hour_too(opd: tuple[QueueEngine, Clock],
                                                                 aredis: aioredis.Redis) -> None:
    eng, clock = opd
    tickets = [await eng.issue("gp") for _ in range(12)]
    for t in reversed(tickets[2:]):  # the desk calls them last first: 09:00, 09:15 ... 11:15
        await eng.call(t["id"], "1")
        clock.now += 900
    assert (await learnt(aredis))["eta_n"] == 9
    profile = await aredis.hgetall(redis_keys.eta_profile("gp"))
    # Monday 09:00 in Kolkata is hour 9 of the clinic's week (03:30 UTC would be hour 3).
    assert {k for k in profile if k[0] in "wh"} == {"w9", "h9", "w10", "h10"}
    assert math.exp(float(profile["w10"])) == pytest.approx(900, rel=0.35)


async def test_a_busy_session_starts_from_what_busy_sessions_were_like(opd: tuple[QueueEngine, Clock]) -> None:
    """Sessions of the same hour, some with 25 patients waiting and a doctor who keeps pace (4
    minutes each), some with 6 and 10 minutes each: a new one starts from what its load was like."""
    eng, clock = opd

    async def session(week: int, patients: int, cycle_s: float) -> int:
        clock.now = MONDAY_9 + week * 7 * 86400
        tickets = [await eng.issue("gp") for _ in range(patients)]
        await eng.next("gp", "1")
        first = await eng.ticket(tickets[1]["id"])  # next in line, as the session starts
        assert first is not None
        for _ in range(patients - 1):
            clock.now += cycle_s
            await eng.next("gp", "1")
        clock.now += cycle_s
        await eng.next("gp", "1")  # the last patient's done: the queue is empty
        return int(first["eta_s"])

    for week in range(8):
        await session(week, *((25, 240) if week % 2 else (6, 600)))
    busy, quiet = await session(8, 25, 240), await session(9, 6, 600)
    assert busy < 0.7 * quiet
    assert busy == pytest.approx(240, rel=0.35) and quiet == pytest.approx(600, rel=0.35)


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


def test_a_real_log_converts_with_its_weekdays_and_who_is_new(tmp_path: Path) -> None:
    """benchmarks/hangu_log.py on rows of the Hangu log's layout: the replay reads the weekday and
    who is new, and puts a morning and an afternoon of the same weekday on one day."""
    source, log = tmp_path / "Raw_1.csv", tmp_path / "log.csv"
    source.write_text(
        "ID,Session,Month,DayOfWeek,WorkingDay,AM_PM,Visit.No,Gender,M.Cancer,S.Cancer,StartTime,PayTime\n"
        "HA,1,January,Wednesday,TRUE,morning,1,F,TRUE,FALSE,8:31:40,8:44:28\n"
        "HB,1,January,Wednesday,TRUE,morning,6,F,FALSE,FALSE,8:43:11,9:07:31\n"
        "HC,2,January,Wednesday,TRUE,afternoon,NA,M,FALSE,FALSE,14:33:05,14:50:00\n"
        "HD,3,January,Saturday,FALSE,morning,2,M,FALSE,FALSE,8:32:36,8:40:00\n"
        "HE,4,January,Wednesday,TRUE,morning,1,F,FALSE,FALSE,8:29:07,8:41:00\n")
    assert hangu_log.convert(source, log) == 5
    sessions = bench.read_log(log)
    assert [(v.weekday, v.new) for v in sessions["1"]] == [(2, True), (2, False)]
    assert sessions["2"][0].new is None
    days = [datetime.fromtimestamp(t, ZoneInfo("Asia/Kolkata")) for t in bench.session_days(sessions)]
    assert [d.strftime("%a") for d in days] == ["Wed", "Wed", "Sat", "Wed"]
    assert days[0] == days[1] and (days[2] - days[1]).days == 3 and (days[3] - days[2]).days == 4
