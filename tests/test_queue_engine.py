"""The queue engine's rules, one by one, against the real embedded Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.engine.eta import estimate
from qtraq_live.errors import Conflict, Invalid, NotFound, Unavailable
from qtraq_live.queue_engine import (
    _OP_DEFINITION,
    ACTIONS,
    QueueEngine,
    _load_scripts,
    format_label,
    mask_name,
    public_ticket,
)


class Clock:
    """A hand-driven clock: tests move time, nothing sleeps."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def clock_engine(aredis: aioredis.Redis) -> tuple[QueueEngine, Clock]:
    # 09:00 in Kolkata on 2026-11-25
    clock = Clock(datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp())
    eng = QueueEngine(aredis, clock=clock, stream_maxlen=100)
    await eng.create_clinic("c1", "Clinic One")
    await eng.create_queue("c1", "gp", "GP", "A", avg_service_s=600)
    await eng.create_queue("c1", "lab", "Lab", "L")
    return eng, clock


def test_pure_helpers() -> None:
    assert format_label("A", 7) == "A-007"
    assert format_label("B", 1234) == "B-1234"
    assert mask_name("Ramesh Kumar") == "R. K."
    assert mask_name(None) is None
    pub = public_ticket({"label": "A-001", "status": "waiting", "position": 1, "ahead": 0, "eta_s": 5,
                         "counter": None, "name": "Secret Name", "id": 4, "token": "t"}, "GP", "Clinic", 9)
    assert set(pub) == {"label", "status", "position", "ahead", "eta_s", "eta_low_s", "eta_high_s", "counter",
                        "queue", "clinic", "version"}


async def test_every_change_bumps_the_clinic_version_by_one(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    assert await eng.version("c1") == 3  # clinic + two queues
    t = await eng.issue("gp")
    assert await eng.version("c1") == 4
    await eng.next("gp", "1")
    await eng.transfer((await eng.issue("gp"))["id"], "lab")  # a transfer is one change
    assert await eng.version("c1") == 7
    events = await eng.events_since("c1", 0)
    assert [e["v"] for e in events] == list(range(1, 8))
    assert [e["type"] for e in events[3:]] == ["issued", "called", "issued", "transferred"]
    assert events[4]["tickets"][0]["id"] == t["id"]


async def test_urgent_first_then_arrival_and_transfer_keeps_arrival(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, clock = clock_engine
    early_lab = await eng.issue("lab")
    clock.advance(1)
    a = await eng.issue("gp")
    clock.advance(1)
    urgent = await eng.issue("gp", priority=1)
    clock.advance(1)
    late_lab = await eng.issue("lab")
    assert urgent["position"] == 1
    assert (await eng.ticket(a["id"]))["position"] == 2
    moved = await eng.transfer(a["id"], "lab")
    assert moved["label"] == a["label"]  # the patient keeps the number on their slip
    lab = await eng.queue_snapshot("lab")
    assert [t["id"] for t in lab["waiting"]] == [early_lab["id"], a["id"], late_lab["id"]]


async def test_next_finishes_the_counter_then_calls(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, clock = clock_engine
    first, second = await eng.issue("gp"), await eng.issue("gp")
    called = await eng.next("gp", "Room 2")
    assert called is not None and called["id"] == first["id"] and called["counter"] == "Room 2"
    clock.advance(120)
    called2 = await eng.next("gp", "Room 2")
    assert called2 is not None and called2["id"] == second["id"]
    assert (await eng.ticket(first["id"]))["status"] == "done"
    clock.advance(60)
    assert await eng.next("gp", "Room 2") is None  # nobody waiting: the last one is done
    assert (await eng.ticket(second["id"]))["status"] == "done"
    v = await eng.version("c1")
    assert await eng.next("gp", "Room 2") is None  # nothing changes: no new version
    assert await eng.version("c1") == v


async def test_eta_follows_the_pace_of_calls(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, clock = clock_engine
    tickets = [await eng.issue("gp") for _ in range(10)]
    before = (await eng.ticket(tickets[9]["id"]))["eta_s"]
    for _ in range(8):  # services of 60 s, much faster than the configured 600 s
        await eng.next("gp", "1")
        clock.advance(60)
    await eng.next("gp", "1")
    after = (await eng.ticket(tickets[9]["id"]))
    assert after["ahead"] == 0
    queue = await eng.get_queue("gp")
    assert queue is not None and 60 < queue["ema_s"] < 600
    assert 40 <= after["eta_s"] <= 90  # one cycle of about 60 s: the configured 600 s is forgotten
    assert after["eta_low_s"] < after["eta_s"] < after["eta_high_s"]
    assert before == estimate(9, {"ema_s": 600, "counters_open": 1}).eta_s > 9 * 600


async def test_two_counters_share_the_wait(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    tickets = [await eng.issue("gp") for _ in range(4)]
    await eng.next("gp", "1")
    await eng.next("gp", "2")
    last = await eng.ticket(tickets[3]["id"])
    assert last["ahead"] == 1
    # Two cycles shared by two counters: half of what one counter would take.
    queue = (await eng.events_since("c1", await eng.version("c1") - 1) or [{}])[0]["queues"][0]
    assert last["eta_s"] == estimate(1, queue).eta_s
    assert last["eta_s"] == pytest.approx(estimate(1, {**queue, "counters_open": 1}).eta_s / 2, abs=1)


async def test_idempotent_press_calls_one_patient(clock_engine: tuple[QueueEngine, Clock], aredis: aioredis.Redis) -> None:
    eng, _ = clock_engine
    a, b = await eng.issue("gp"), await eng.issue("gp")
    first = await eng.next("gp", "1", idempotency_key="press-1")
    again = await eng.next("gp", "1", idempotency_key="press-1")
    assert first == again and first is not None and first["id"] == a["id"]
    assert (await eng.ticket(b["id"]))["status"] == "waiting"
    ttl = await aredis.ttl(keys.idempotency("gp", "press-1"))
    assert 590 <= ttl <= 600


async def test_simultaneous_presses_call_different_patients(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    for _ in range(20):
        await eng.issue("gp")
    called = await asyncio.gather(*(eng.next("gp", str(c)) for c in range(1, 21)))
    ids = [t["id"] for t in called if t]
    assert len(ids) == 20 and len(set(ids)) == 20


async def test_labels_restart_each_day_in_the_clinic_timezone_ids_never_repeat(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, clock = clock_engine
    day1 = [await eng.issue("gp") for _ in range(3)]
    assert [t["label"] for t in day1] == ["A-001", "A-002", "A-003"]
    # 23:59 in Kolkata is still the same day there, though UTC has long passed 18:29
    clock.now = datetime(2026, 11, 25, 23, 59, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()
    assert (await eng.issue("gp"))["label"] == "A-004"
    clock.advance(120)  # 00:01 next day in Kolkata
    day2 = await eng.issue("gp")
    assert day2["label"] == "A-001"
    assert day2["id"] > max(t["id"] for t in day1)


async def test_illegal_transitions_are_409_and_leave_no_trace(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    t = await eng.issue("gp")
    await eng.cancel(t["id"])
    v = await eng.version("c1")
    for action in ("done", "recall", "skip", "serve", "no_show", "cancel"):
        with pytest.raises(Conflict) as err:
            await eng.act(action, t["id"])
        assert err.value.code == "illegal_transition"
    with pytest.raises(Conflict):
        await eng.transfer(t["id"], "lab")
    assert await eng.version("c1") == v
    with pytest.raises(NotFound):
        await eng.done(999999)
    with pytest.raises(NotFound):
        await eng.next("nope")
    await eng.pause("gp")
    with pytest.raises(Conflict) as paused:
        await eng.next("gp")
    assert paused.value.code == "queue_paused"


async def test_requeue_returns_a_patient_to_their_place(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, clock = clock_engine
    a = await eng.issue("gp")
    clock.advance(1)
    b = await eng.issue("gp")
    await eng.next("gp")
    await eng.skip(a["id"])
    back = await eng.requeue(a["id"])
    assert back["status"] == "waiting" and back["position"] == 1
    assert (await eng.ticket(b["id"]))["position"] == 2


async def test_recall_is_a_new_call_in_recent(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    t = await eng.issue("gp")
    await eng.next("gp", "3")
    recalled = await eng.recall(t["id"])
    assert recalled["recalls"] == 1 and recalled["status"] == "called"
    snap = await eng.clinic_snapshot("c1")
    assert [(r["label"], r["counter"]) for r in snap["recent"][:2]] == [("A-001", "3"), ("A-001", "3")]
    events = await eng.events_since("c1", snap["version"] - 1)
    assert events is not None and events[0]["type"] == "recalled"


async def test_validation_names_the_field(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    cases = [
        (eng.create_clinic("Bad Id", "x"), "id"),
        (eng.create_clinic("c2", "x", timezone="Mars/Base"), "timezone"),
        (eng.create_queue("c1", "q2", "Q", "abc"), "prefix"),
        (eng.create_queue("c1", "q3", "Q", "Q", avg_service_s=-1), "avg_service_s"),
        (eng.issue("gp", priority=5), "priority"),
        (eng.issue("gp", name="x" * 500), "name"),
        (eng.next("gp", "c" * 33), "counter"),
        (eng.transfer(1, "Not A Queue"), "queue"),
    ]
    for coro, field in cases:
        with pytest.raises(Invalid) as err:
            await coro
        assert err.value.field == field
    with pytest.raises(Conflict):
        await eng.create_queue("c1", "gp", "Again", "A")


async def test_resume_window_and_trimming(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    assert await eng.events_since("c1", 3) == []
    for _ in range(400):  # stream_maxlen=100 in this fixture: early events are trimmed
        await eng.issue("gp")
    v = await eng.version("c1")
    assert await eng.events_since("c1", 1) is None
    assert await eng.events_since("c1", v + 5) is None  # a version this clinic never had
    tail = await eng.events_since("c1", v - 10)
    assert tail is not None and [e["v"] for e in tail] == list(range(v - 9, v + 1))


async def test_token_opens_one_ticket_and_patient_can_leave(clock_engine: tuple[QueueEngine, Clock]) -> None:
    eng, _ = clock_engine
    t = await eng.issue("gp", name="Asha")
    assert len(t["token"]) >= 22
    seen = await eng.ticket_by_token(t["token"])
    assert seen is not None and seen["id"] == t["id"] and seen["queue_name"] == "GP"
    assert await eng.ticket_by_token("x" * 32) is None
    left = await eng.cancel_by_token(t["token"])
    assert left["status"] == "cancelled"
    assert (await eng.queue_snapshot("gp"))["waiting"] == []


def test_each_operation_lives_in_exactly_one_script() -> None:
    defined = [op for source in _load_scripts().values() for op in _OP_DEFINITION.findall(source)]
    assert len(defined) == len(set(defined))
    assert set(defined) == {*ACTIONS, "create_clinic", "update_clinic", "create_queue", "update_queue", "pause",
                            "resume", "issue", "next", "queue_snapshot", "clinic_snapshot", "ticket",
                            "clinic_definition", "queue_definition",
                            "move_back", "notify_on", "close_counter"}


async def test_a_script_refuses_another_familys_operation(clock_engine: tuple[QueueEngine, Clock],
                                                          aredis: aioredis.Redis) -> None:
    eng, _ = clock_engine
    before = await eng.version("c1")
    await aredis.script_load(eng._scripts["next"].script)  # this test may be the first to use it
    raw = await aredis.evalsha(eng._scripts["next"].sha, 0, "issue", '{"queue": "gp"}', 1, 100)
    assert '"error":"invalid_field"' in raw and "unknown operation issue" in raw
    assert await eng.version("c1") == before


async def test_a_change_answers_with_what_its_event_says(clock_engine: tuple[QueueEngine, Clock]) -> None:
    """The answer is built from the event's own JSON (encoded once): the same ticket and queue."""
    eng, clock = clock_engine
    first = await eng.issue("gp", name="Asha")
    await eng.issue("gp")
    clock.advance(60)
    called = await eng.next("gp", "2")
    called_in = await eng.events_since("c1", await eng.version("c1") - 1)
    moved = await eng.transfer(first["id"] + 1, "lab")
    moved_in = await eng.events_since("c1", await eng.version("c1") - 1)
    for answer, events in ((called, called_in), (moved, moved_in)):
        assert events is not None and len(events) == 1
        ticket = next(t for t in events[0]["tickets"] if t["id"] == answer["id"])
        queue = next(q for q in events[0]["queues"] if q["id"] == answer["queue"])
        assert {k: answer[k] for k in ("status", "queue", "counter", "label")} == \
            {k: ticket[k] for k in ("status", "queue", "counter", "label")}
        assert answer["eta_s"] == (None if answer["status"] != "waiting" else
                                   estimate(answer["ahead"], queue).eta_s)
    assert called["id"] == first["id"] and called["status"] == "called" and called["counter"] == "2"
    assert moved["queue"] == "lab" and moved["position"] == 1 and moved["ahead"] == 0


async def test_text_anyone_typed_comes_back_exactly(clock_engine: tuple[QueueEngine, Clock]) -> None:
    """The scripts write JSON as text: names and counters with quotes, backslashes, slashes and
    non-ASCII letters still arrive as they were sent."""
    eng, _ = clock_engine
    name, counter = 'Asha "Ashu" Kumari \\ आशा</b>', 'Room "2" \\ कक्ष'
    issued = await eng.issue("gp", name=name)
    called = await eng.next("gp", counter)
    event = (await eng.events_since("c1", await eng.version("c1") - 1))[0]  # type: ignore[index]
    assert issued["name"] == name and called is not None and called["counter"] == counter
    assert event["tickets"][0]["name"] == name and event["tickets"][0]["counter"] == counter
    assert (await eng.ticket(issued["id"]))["name"] == name
    snapshot = await eng.clinic_state("c1")
    assert snapshot["recent"][0]["counter"] == counter and snapshot["recent"][0]["label"] == called["label"]


async def test_an_event_without_tickets_has_empty_lists(engine: QueueEngine) -> None:
    await engine.create_clinic("c9", "Clinic")
    first = await engine.events_since("c9", 0)
    assert first is not None and first[0]["tickets"] == [] and first[0]["queues"] == []
    raw = await engine.redis.xrange(keys.events("c9"))
    assert '"tickets":[]' in raw[0][1]["e"]  # a list in the stream itself, not cjson's {}


@pytest.fixture
async def lossy_engine(redis_url: str) -> AsyncIterator[tuple[QueueEngine, asyncio.Event]]:
    """An engine whose Redis is reached through a proxy that, once the event is set, passes
    the next command on to Redis and then cuts the connection instead of passing the answer
    (once: a new connection afterwards works)."""
    cut, armed = asyncio.Event(), asyncio.Event()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_unix_connection(redis_url.removeprefix("unix://"))

        async def up() -> None:
            while data := await client_r.read(65536):
                redis_w.write(data)
                if armed.is_set():
                    armed.clear()
                    cut.set()

        async def down() -> None:
            while data := await redis_r.read(65536):
                if cut.is_set():
                    cut.clear()
                    client_w.close()  # Redis ran the command; its answer is lost
                    return
                client_w.write(data)

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        redis_w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)  # redis-py's default: retries
    yield QueueEngine(client), armed
    await client.aclose()
    server.close()


async def test_a_press_whose_answer_is_lost_calls_one_patient(
        lossy_engine: tuple[QueueEngine, asyncio.Event], engine: QueueEngine) -> None:
    """redis-py sends a command again after a connection error (its client retries by default);
    a press must not be: the first one may have run, and a second would call the next patient."""
    lossy, armed = lossy_engine
    await engine.create_clinic("c1", "Clinic")
    await engine.create_queue("c1", "gp", "GP", "A")
    first = await engine.issue("gp")
    second = await lossy.issue("gp")  # also warms the lossy engine's timezone cache: the press is its one command
    await lossy.load_scripts()
    before = await engine.version("c1")
    armed.set()
    with pytest.raises(Unavailable):
        await lossy.next("gp", "1")
    assert await engine.version("c1") == before + 1
    assert (await engine.ticket(first["id"]))["status"] == "called"
    assert (await engine.ticket(second["id"]))["status"] == "waiting"


async def test_a_script_redis_forgot_is_loaded_again(clock_engine: tuple[QueueEngine, Clock],
                                                     aredis: aioredis.Redis) -> None:
    """NOSCRIPT (Redis restarted without its scripts) means the call did not run: load, call."""
    eng, _ = clock_engine
    waiting = await eng.issue("gp")
    await aredis.script_flush()
    called = await eng.next("gp", "1")
    assert called is not None and called["id"] == waiting["id"]
    assert (await aredis.script_exists(eng._scripts["next"].sha)) == [True]
