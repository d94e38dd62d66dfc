"""The hub's mirror against the real engine: after any run of changes, a mirror built from an
earlier snapshot and fed the stream agrees with a fresh snapshot, and replayed updates are
byte-for-byte the live ones."""

from __future__ import annotations

import json
import random
from typing import Any

from qtraq_live.errors import Conflict
from qtraq_live.queue_engine import PUBLIC_FIELDS as PUBLIC
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.realtime.mirror import Mirror, dumps


async def seed(engine: QueueEngine, mask: bool = True) -> None:
    await engine.create_clinic("c1", "City Clinic", mask_names=mask)
    await engine.create_queue("c1", "gp", "General", "A", avg_service_s=120)
    await engine.create_queue("c1", "lab", "Lab", "L", avg_service_s=60)


async def random_change(engine: QueueEngine, rng: random.Random, ids: list[int]) -> None:
    """One random legal-or-not change; illegal ones raise Conflict and change nothing."""
    action = rng.choice(["issue", "issue", "issue", "next", "next", "act", "act", "transfer", "pause"])
    try:
        if action == "issue" or not ids:
            t = await engine.issue(rng.choice(["gp", "lab"]), name=f"Pat {len(ids)} Kumar",
                                   priority=int(rng.random() < 0.2))
            ids.append(t["id"])
        elif action == "next":
            await engine.next(rng.choice(["gp", "lab"]), rng.choice(["1", "2"]))
        elif action == "act":
            verb = rng.choice(["recall", "serve", "skip", "no_show", "done", "cancel", "requeue"])
            await engine.act(verb, rng.choice(ids))
        elif action == "transfer":
            await engine.transfer(rng.choice(ids), rng.choice(["gp", "lab"]))
        else:
            q = rng.choice(["gp", "lab"])
            paused = (await engine.get_queue(q) or {})["paused"]
            await (engine.resume(q) if paused else engine.pause(q))
    except Conflict:
        pass


async def stream_events(engine: QueueEngine, since: int) -> list[dict[str, Any]]:
    events = await engine.events_since("c1", since)
    assert events is not None
    return events


def labels(tickets: list[dict[str, Any]]) -> list[str]:
    return [t["label"] for t in tickets]


def patient_bodies(m: Mirror, tids: list[int]) -> dict[int, str]:
    """What the hub sends each of ``tids`` known to the mirror, as it makes them in a fan-out."""
    make = m.patient_body_maker()
    return {tid: body for tid in tids if (body := make(tid)) is not None}


async def assert_agrees(engine: QueueEngine, m: Mirror) -> None:
    snap = await engine.clinic_snapshot("c1")
    assert m.version == snap["version"]
    shown = m.display_snapshot()
    for q, mine in zip(snap["queues"], shown["queues"], strict=True):
        assert labels(mine["waiting"]) == labels(q["waiting"])
        assert labels(mine["now_serving"]) == labels(q["now_serving"])
        assert mine["paused"] == q["paused"]
        bodies = patient_bodies(m, [t["id"] for t in [*q["waiting"], *q["now_serving"]]])
        for t in [*q["waiting"], *q["now_serving"]]:
            view = m.patient_view(t["id"])
            assert view is not None and bodies[t["id"]] == dumps(view)  # the fast path, byte for byte
            assert {k: view[k] for k in PUBLIC} == {k: t[k] for k in PUBLIC}
    assert shown["recent"] == snap["recent"][:10]


async def test_mirror_follows_the_engine(engine: QueueEngine) -> None:
    await seed(engine)
    rng = random.Random(7)
    ids: list[int] = []
    for _ in range(30):
        await random_change(engine, rng, ids)
    m = Mirror(await engine.clinic_state("c1"))
    await assert_agrees(engine, m)
    start = m.version
    live: list[str] = []
    for _ in range(150):
        await random_change(engine, rng, ids)
        for ev in await stream_events(engine, m.version):
            assert m.apply(ev) == "applied"
            live.append(json.dumps(m.display_update(ev, m.counts())))
    await assert_agrees(engine, m)
    # replay rendering (counts worked out backwards) is exactly the live rendering
    history = m.history(await stream_events(engine, start))
    assert history is not None
    assert [json.dumps(m.display_update(ev, counts)) for ev, counts in history] == live


async def test_patient_bodies_follow_renames_and_moves(engine: QueueEngine) -> None:
    """The per-ticket parts kept between events are redone when the queue's or the clinic's
    name changes, and the numbers move with every call."""
    await seed(engine)
    ids = [(await engine.issue("gp", name=f"P {i}"))["id"] for i in range(4)]
    m = Mirror(await engine.clinic_state("c1"))

    async def step(change: Any) -> None:
        await change
        for ev in await stream_events(engine, m.version):
            assert m.apply(ev) == "applied"
        bodies = patient_bodies(m, ids)
        assert {tid: json.loads(body) for tid, body in bodies.items()} == {tid: m.patient_view(tid) for tid in ids}

    await step(engine.next("gp", "1"))
    await step(engine.update_queue("gp", name="General OPD"))
    await step(engine.update_clinic("c1", name="Town Clinic"))
    await step(engine.next("gp", "2"))
    assert json.loads(patient_bodies(m, ids[-1:])[ids[-1]]) == {
        "label": "A-004", "status": "waiting", "position": 2, "ahead": 1,
        **{k: m.patient_view(ids[-1])[k] for k in ("eta_s", "eta_low_s", "eta_high_s")},  # type: ignore[index]
        "counter": None, "queue": {"name": "General OPD"}, "clinic": {"name": "Town Clinic"}}


async def test_apply_skips_old_and_refuses_holes(engine: QueueEngine) -> None:
    await seed(engine)
    m = Mirror(await engine.clinic_state("c1"))
    await engine.issue("gp", name="A B")
    await engine.issue("gp", name="C D")
    first, second = await stream_events(engine, m.version)
    assert Mirror(await engine.clinic_state("c1")).apply(first) == "stale"  # in the snapshot already
    assert m.apply(second) == "gap" and m.version == second["v"] - 2


async def test_display_masks_and_patient_sees_only_itself(engine: QueueEngine) -> None:
    await seed(engine, mask=True)
    a = await engine.issue("gp", name="Ramesh Kumar")
    b = await engine.issue("gp", name="Sita Devi")
    m = Mirror(await engine.clinic_state("c1"))
    names = [t["name"] for q in m.display_snapshot()["queues"] for t in q["waiting"]]
    assert names == [None, None]  # the TV shows waiting tickets by label only (issue #21 item 18)
    issued = m.display_update({"v": 1, "type": "issued", "queues": [], "tickets": [m.tickets[b["id"]]]}, {})
    assert [t["name"] for t in issued["tickets"]] == [None]  # an update of a waiting ticket: no name either
    at_counter = {**m.tickets[b["id"]], "status": "called", "counter": "2", "called_at": 5_000}
    called = m.display_update({"v": 2, "type": "called", "at": 5_000, "queues": [], "tickets": [at_counter]}, {})
    assert [t["name"] for t in called["tickets"]] == ["S. D."]  # a called patient's name, masked as the clinic asks
    cleared = m.display_update({"v": 2, "type": "called", "at": 5_000, "queues": [], "tickets": [at_counter]}, {},
                               cleared_before_ms=5_001)
    assert [t["name"] for t in cleared["tickets"]] == [None]  # a call the idle counter's screen has cleared
    done = m.display_update({"v": 3, "type": "done", "queues": [], "tickets": [{**at_counter, "status": "done"}]}, {})
    assert [t["name"] for t in done["tickets"]] == [None]  # a finished ticket leaves the screen
    view = m.patient_view(b["id"])
    assert view == {"label": b["label"], "status": "waiting", "position": 2, "ahead": 1,
                    **{k: view[k] for k in ("eta_s", "eta_low_s", "eta_high_s")},
                    "counter": None, "queue": {"name": "General"},
                    "clinic": {"name": "City Clinic"}}
    assert view["eta_low_s"] < view["eta_s"] < view["eta_high_s"]
    text = json.dumps(view)
    assert a["label"] not in text and "Ramesh" not in text and "Sita" not in text
    assert b["token"] not in text and "id" not in view and "token" not in view


async def test_reception_filters_by_queue(engine: QueueEngine) -> None:
    await seed(engine)
    m = Mirror(await engine.clinic_state("c1"))
    await engine.issue("lab", name="Lab Person")
    t = await engine.issue("gp", name="Gp Person")
    await engine.transfer(t["id"], "lab")
    updates = []
    for ev in await stream_events(engine, m.version):
        m.apply(ev)
        updates.append(m.reception_update(ev, m.counts(), frozenset({"gp"})))
    assert updates[0] is None  # a lab ticket: nothing for a gp doctor
    assert [t["name"] for t in updates[1]["tickets"]] == ["Gp Person"]
    assert updates[2]["tickets"][0]["queue"] == "lab"  # moved away: the doctor's list drops it
    assert [q["id"] for q in updates[2]["queues"]] == ["gp"]
    snap = m.reception_snapshot(frozenset({"gp"}))
    assert [q["id"] for q in snap["queues"]] == ["gp"] and snap["queues"][0]["waiting"] == []
