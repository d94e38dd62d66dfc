"""The engine against a plain Python model of the queue, over random operation sequences.

Hypothesis drives every operation (issue, next with and without idempotency keys, concurrent
presses from two counters, every ticket action, transfer, pause, resume, closing a counter) and
lets minutes pass;
after each step the engine's queues, statuses, version and open counters must equal the model's.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from qtraq_live.errors import Conflict
from qtraq_live.queue_engine import RESULT_STATUS, TRANSITIONS, QueueEngine, TicketStatus

COUNTER_OPEN_MS = 5 * 60 * 1000  # as the engine's Lua: a counter counts for 5 minutes at least

QUEUES = ("gp", "lab")
COUNTERS = ("1", "2", "3")
S = TicketStatus


@dataclass
class ModelTicket:
    id: int
    queue: str
    priority: int
    arrival: int
    status: TicketStatus = S.WAITING
    counter: str | None = None


@dataclass
class Model:
    """The queue as a receptionist understands it."""

    tickets: dict[int, ModelTicket] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=lambda: {q: {} for q in QUEUES})
    paused: dict[str, bool] = field(default_factory=lambda: {q: False for q in QUEUES})
    seen: dict[str, dict[str, int]] = field(default_factory=lambda: {q: {} for q in QUEUES})  # last press, ms
    version: int = 0

    def counters_open(self, queue: str, now_ms: int, ema_s: int) -> int:
        """Counters holding a patient, and those that pressed within two services (5 min at least)."""
        since = now_ms - max(2 * ema_s * 1000, COUNTER_OPEN_MS)
        recent = {c for c, at in self.seen[queue].items() if at >= since}
        return max(1, len(recent | set(self.counters[queue])))

    def waiting(self, queue: str) -> list[int]:
        ts = [t for t in self.tickets.values() if t.queue == queue and t.status == S.WAITING]
        return [t.id for t in sorted(ts, key=lambda t: (-t.priority, t.arrival))]

    def leave_counter(self, t: ModelTicket) -> None:
        if t.counter is not None and self.counters[t.queue].get(t.counter) == t.id:
            del self.counters[t.queue][t.counter]

    def next(self, queue: str, counter: str, now_ms: int) -> int | None:
        """Returns the called id; bumps the version only when something changed."""
        self.seen[queue][counter] = now_ms
        changed = False
        prev = self.counters[queue].pop(counter, None)
        if prev is not None and self.tickets[prev].status in (S.CALLED, S.SERVING):
            self.tickets[prev].status = S.DONE
            changed = True
        waiting = self.waiting(queue)
        called = None
        if waiting:
            called = waiting[0]
            t = self.tickets[called]
            t.status, t.counter = S.CALLED, counter
            self.counters[queue][counter] = called
            changed = True
        if changed:
            self.version += 1
        return called

    def close_counter(self, queue: str, counter: str) -> int | None:
        """The counter's patient is done and it stops counting as open; returns that patient's id.
        A counter that is not open (never pressed, or closed) changes nothing."""
        if counter not in self.seen[queue] and counter not in self.counters[queue]:
            return None
        self.seen[queue].pop(counter, None)
        prev = self.counters[queue].pop(counter, None)
        if prev is not None:
            self.tickets[prev].status = S.DONE
        self.version += 1
        return prev

    def act(self, action: str, t: ModelTicket) -> None:
        if action in ("skip", "no_show", "done", "cancel", "requeue"):
            self.leave_counter(t)
        new = RESULT_STATUS[action]
        if new is not None:
            t.status = new
        if new == S.WAITING:
            t.counter = None
        self.version += 1


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = aioredis.from_url(REDIS_URL, decode_responses=True)
        self.now_ms = 1_764_000_000_000  # each engine call takes a millisecond; time_passes jumps
        self.engine = QueueEngine(self.redis, clock=self.tick)
        self.model = Model()
        self.arrivals = itertools.count()
        self.presses = itertools.count()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def tick(self) -> float:
        self.now_ms += 1
        return self.now_ms / 1000

    @initialize()
    def setup(self) -> None:
        self.run(self.redis.flushall())
        self.run(self.engine.create_clinic("c1", "Clinic"))
        for q, prefix in zip(QUEUES, ("A", "L")):
            self.run(self.engine.create_queue("c1", q, q.upper(), prefix))
        self.model.version = 3

    def teardown(self) -> None:
        self.run(self.redis.aclose())
        self.loop.close()

    @rule(queue=st.sampled_from(QUEUES), priority=st.sampled_from([0, 0, 0, 1]))
    def issue(self, queue: str, priority: int) -> None:
        t = self.run(self.engine.issue(queue, priority=priority, name="Pat"))
        self.model.tickets[t["id"]] = ModelTicket(t["id"], queue, priority, next(self.arrivals))
        self.model.version += 1
        assert t["position"] == self.model.waiting(queue).index(t["id"]) + 1

    @rule(queue=st.sampled_from(QUEUES), counter=st.sampled_from(COUNTERS), retry=st.booleans())
    def next_press(self, queue: str, counter: str, retry: bool) -> None:
        if self.model.paused[queue]:
            with pytest.raises(Conflict):
                self.run(self.engine.next(queue, counter))
            return
        key = f"press-{next(self.presses)}"
        got = self.run(self.engine.next(queue, counter, idempotency_key=key))
        assert (got["id"] if got else None) == self.model.next(queue, counter, self.now_ms)
        if retry:  # the same press sent again: same answer, nobody else called
            version = self.run(self.engine.version("c1"))
            assert self.run(self.engine.next(queue, counter, idempotency_key=key)) == got
            assert self.run(self.engine.version("c1")) == version

    @rule(queue=st.sampled_from(QUEUES))
    def concurrent_presses(self, queue: str) -> None:
        """Two receptionists press at the same instant: two different patients."""
        if self.model.paused[queue]:
            return
        async def both() -> list[dict | None]:
            return await asyncio.gather(self.engine.next(queue, "1"), self.engine.next(queue, "2"))

        a, b = self.run(both())
        # Each script runs atomically, in some order: whoever got the first patient ran first.
        expected_first = self.model.waiting(queue)[:2]
        b_first = b is not None and expected_first and b["id"] == expected_first[0]
        for counter, result in (("2", b), ("1", a)) if b_first else (("1", a), ("2", b)):
            assert (result["id"] if result else None) == self.model.next(queue, counter, self.now_ms)
        assert a is None or b is None or a["id"] != b["id"]

    @precondition(lambda self: self.model.tickets)
    @rule(data=st.data(), action=st.sampled_from(sorted(a for a in TRANSITIONS if a not in ("transfer", "call"))))
    def act(self, data: st.DataObject, action: str) -> None:
        t = self.model.tickets[data.draw(st.sampled_from(sorted(self.model.tickets)))]
        if t.status in TRANSITIONS[action]:
            got = self.run(self.engine.act(action, t.id))
            self.model.act(action, t)
            assert got["status"] == t.status
        else:
            before = self.run(self.engine.version("c1"))
            with pytest.raises(Conflict):
                self.run(self.engine.act(action, t.id))
            assert self.run(self.engine.version("c1")) == before

    @precondition(lambda self: self.model.tickets)
    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        t = self.model.tickets[data.draw(st.sampled_from(sorted(self.model.tickets)))]
        to = "lab" if t.queue == "gp" else "gp"
        if t.status in TRANSITIONS["transfer"]:
            got = self.run(self.engine.transfer(t.id, to))
            self.model.leave_counter(t)
            t.queue, t.status, t.counter = to, S.WAITING, None
            self.model.version += 1  # a transfer is one change
            assert got["position"] == self.model.waiting(to).index(t.id) + 1
        else:
            with pytest.raises(Conflict):
                self.run(self.engine.transfer(t.id, to))

    @rule(queue=st.sampled_from(QUEUES), pause=st.booleans())
    def pause_resume(self, queue: str, pause: bool) -> None:
        q = self.run(self.engine.pause(queue) if pause else self.engine.resume(queue))
        if self.model.paused[queue] != pause:
            self.model.version += 1
        self.model.paused[queue] = pause
        assert q["paused"] is pause

    @rule(queue=st.sampled_from(QUEUES), counter=st.sampled_from(COUNTERS), again=st.booleans())
    def close_counter(self, queue: str, counter: str, again: bool) -> None:
        was_open = counter in self.model.seen[queue] or counter in self.model.counters[queue]
        done, closed = self.run(self.engine.close_counter(queue, counter))
        assert closed is was_open
        assert (done["id"] if done else None) == self.model.close_counter(queue, counter)
        assert done is None or (done["status"], done["counter"]) == (S.DONE, counter)
        if again:  # closing a closed counter changes nothing
            version = self.run(self.engine.version("c1"))
            assert self.run(self.engine.close_counter(queue, counter)) == (None, False)
            assert self.run(self.engine.version("c1")) == version

    @rule(minutes=st.integers(1, 15))
    def time_passes(self, minutes: int) -> None:
        self.now_ms += minutes * 60_000

    @invariant()
    def engine_equals_model(self) -> None:
        if not hasattr(self, "model") or self.model.version == 0:
            return
        assert self.run(self.engine.version("c1")) == self.model.version
        for q in QUEUES:
            snap = self.run(self.engine.queue_snapshot(q))
            assert [t["id"] for t in snap["waiting"]] == self.model.waiting(q)
            assert [t["position"] for t in snap["waiting"]] == list(range(1, len(snap["waiting"]) + 1))
            assert {t["id"] for t in snap["now_serving"]} == set(self.model.counters[q].values())
            assert snap["paused"] is self.model.paused[q]
        state = self.run(self.engine.clinic_state("c1"))
        for q in state["queues"]:
            assert q["counters_open"] == self.model.counters_open(q["id"], self.now_ms, q["ema_s"])
        for t in self.model.tickets.values():
            got = self.run(self.engine.ticket(t.id))
            assert (got["status"], got["queue"]) == (t.status, t.queue)


REDIS_URL = ""


def test_engine_matches_model(redis_url: str) -> None:
    global REDIS_URL
    REDIS_URL = redis_url
    EngineMachine.TestCase.settings = settings(
        max_examples=40, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    EngineMachine.TestCase().runTest()
