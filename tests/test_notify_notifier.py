"""The notifier duty end to end: queue events and account requests -> notices -> real RQ
workers -> the local SMS sink, and the delivery log in SQLite."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record.store import Store
from qtraq_live.runtime.duties import Context
from qtraq_live.workers.notices import enqueue_account_notice, request_retry, set_consent
from qtraq_live.workers.notifier import Notifier
from tests.support_notify import (NotifyEnv, Sink, Workers, await_until, notifier,  # noqa: F401
                                  notify_env, sink, smtp, workers)


def phone(i: int) -> str:
    return f"+9197{i:08d}"


async def walk_in(ctx: Context, queue: str, i: int | None, **kw: Any) -> dict[str, Any]:
    """Issue a ticket the way the issuing endpoint does: contact row first, then the engine."""
    tid = await ctx.engine.allocate_ticket_id()
    if i is not None:
        await ctx.store.execute("INSERT INTO ticket_contacts (ticket_id, mobile, email, created_at) VALUES (?, ?, ?, 0)",
                                (tid, phone(i), None))
    return await ctx.engine.issue(queue, ticket_id=tid, notify=i is not None, **kw)


def texts(sink: Sink, i: int) -> list[str]:
    return [r["message"] for r in sink.to(phone(i))]


async def group_idle(client: aioredis.Redis, stream: str, group: str) -> bool:
    """Everything in the stream was read and acknowledged by ``group``."""
    info = next(g for g in await client.xinfo_groups(stream) if g["name"] == group)
    last = await client.xrevrange(stream, count=1)
    return info["pending"] == 0 and bool(last) and info["last-delivered-id"] == last[0][0]


async def test_queue_events_become_notices_in_order(
        notifier: Context, sink: Sink, workers: Workers, aredis: aioredis.Redis) -> None:
    engine: QueueEngine = notifier.engine
    await engine.create_clinic("c1", "City Clinic")
    await engine.create_queue("c1", "gp", "Dr Rao", "A", notify_ahead=1)
    workers.start(1)
    t1, t2, t3 = [await walk_in(notifier, "gp", i) for i in (1, 2, 3)]
    await walk_in(notifier, "gp", None)  # no notices asked for
    await await_until(lambda: all(texts(sink, i) for i in (1, 2, 3)), "three 'issued' SMS")
    assert texts(sink, 1)[0].startswith(f"City Clinic: you are {t1['label']} for Dr Rao, 0 ahead")
    assert f"https://q.example.in/t/{t1['token']}" in texts(sink, 1)[0]

    await engine.next("gp", counter="2")  # t1 called; t3 is now 1 ahead: the threshold
    await await_until(lambda: len(texts(sink, 1)) == 2 and len(texts(sink, 3)) == 2, "called + ahead")
    assert "please come to Dr Rao, counter 2" in texts(sink, 1)[1]
    assert f"{t3['label']}, 1 ahead of you" in texts(sink, 3)[1]
    assert len(texts(sink, 2)) == 1  # t2 was already near when issued: told once, on issue

    await engine.cancel_by_token(t2["token"])  # the patient left: no message about it
    await engine.cancel(t3["id"], actor="user:1")  # the clinic cancelled: the patient is told
    await await_until(lambda: len(texts(sink, 3)) == 3, "the cancellation notice")
    assert "cancelled by the clinic" in texts(sink, 3)[2]
    assert len(texts(sink, 2)) == 1

    rows = await await_until(lambda: _sent_rows(notifier), "the delivery log in SQLite")
    assert {r["kind"] for r in rows} == {"issued", "called", "ahead", "cancelled"}
    assert all(r["recipient_hint"].startswith("+91***") for r in rows)
    attempts = await notifier.store.fetchall("SELECT outcome, response_class FROM notice_attempts", ())
    assert len(attempts) == 6 and {(a["outcome"], a["response_class"]) for a in attempts} == {("sent", "accepted")}


async def _sent_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = await ctx.store.fetchall("SELECT * FROM notices WHERE status = 'sent'", ())
    return rows if len(rows) == 6 else []


async def test_a_duplicated_event_sends_nothing_twice(
        notifier: Context, sink: Sink, workers: Workers, aredis: aioredis.Redis) -> None:
    engine: QueueEngine = notifier.engine
    await engine.create_clinic("c2", "Town Clinic")
    await engine.create_queue("c2", "eye", "Eye", "E")
    workers.start(1)
    await walk_in(notifier, "eye", 7)
    await await_until(lambda: texts(sink, 7), "issued")
    await engine.next("eye")
    await await_until(lambda: len(texts(sink, 7)) == 2, "called")
    stream = keys.events("c2")
    (last_id, fields), = await aredis.xrevrange(stream, count=1)
    await aredis.xadd(stream, dict(fields), id=f"{last_id.split('-')[0]}-1")  # the same event again
    await await_until(lambda: group_idle(aredis, stream, "notify"), "the notifier to read it")
    notices = [k async for k in aredis.scan_iter("qt:notice:t*")]
    assert len(notices) == 2
    await engine.version("c2")  # a round trip: the workers have nothing new either
    assert len(texts(sink, 7)) == 2


async def test_account_notices_dedupe_and_respect_consent(
        notifier: Context, sink: Sink, workers: Workers, aredis: aioredis.Redis) -> None:
    workers.start(1)
    for _ in range(2):  # a retried request: one SMS
        await enqueue_account_notice(aredis, kind="verify_code", to=phone(20), channel="sms",
                                     context={"code": "482913", "minutes": 10}, lang="hi",
                                     dedupe_key="verify:20:1", subject="account:20")
    await set_consent(aredis, "account:21", False)
    await enqueue_account_notice(aredis, kind="welcome", to=phone(21), channel="sms", context={"name": None},
                                 lang="en", dedupe_key="welcome:21", subject="account:21")
    await await_until(lambda: texts(sink, 20), "the code")
    assert "482913" in texts(sink, 20)[0] and "सत्यापन" in texts(sink, 20)[0]
    record = await await_until(lambda: _final(aredis, "a:welcome:21:sms"), "the withdrawn one to finish")
    assert (record["state"], record["reason"]) == ("dropped", "no_consent")
    code = await aredis.hgetall(keys.notice("a:verify:20:1:sms"))
    assert code["queue"] == "notify-high" and code["state"] == "sent"
    assert len(texts(sink, 20)) == 1 and not texts(sink, 21)
    assert not await aredis.xlen(keys.NOTICE_REQUESTS)  # codes and addresses not kept in the stream
    assert json.loads(code["check"]) == {}


async def _final(client: aioredis.Redis, key: str) -> dict[str, str] | None:
    record = await client.hgetall(keys.notice(key))
    return record if record.get("state") in ("sent", "dropped", "failed") else None


async def test_a_long_pause_tells_each_waiting_patient_once(
        notify_env: NotifyEnv, aredis: aioredis.Redis, engine: QueueEngine) -> None:
    store = Store(notify_env.settings.data_dir / "qtraq.db")
    await store.open()
    ctx = Context(notify_env.settings, aredis, engine, store)
    notifier_ = Notifier(ctx)
    try:
        await engine.create_clinic("c3", "Hill Clinic")
        await engine.create_queue("c3", "ent", "ENT", "N")
        t = await walk_in(ctx, "ent", 40)
        await walk_in(ctx, "ent", None)
        paused = await engine.pause("ent")
        await notifier_.add_clinic("c3")  # a restart: the pause is known, its start is not
        await notifier_.pause_notices()
        assert not [k async for k in aredis.scan_iter("qt:notice:*:paused:*")]  # not long enough yet
        clinic, _, version = notifier_.paused[paused["id"]]
        notifier_.paused[paused["id"]] = (clinic, 0, version)  # as if paused long ago
        for _ in range(2):
            await notifier_.pause_notices()
        (key,) = [k async for k in aredis.scan_iter("qt:notice:*:paused:*")]
        record = await aredis.hgetall(key)
        assert key == keys.notice(f"t{t['id']}:paused:{version}:sms") and record["queue"] == "notify"
        assert json.loads(record["check"])["paused_queue"] == "ent"
    finally:
        notifier_.rq.close()
        await store.close()


async def test_an_admin_retry_goes_through_the_notifier_to_the_gateway(
        notifier: Context, sink: Sink, workers: Workers, aredis: aioredis.Redis) -> None:
    sink.down()
    await enqueue_account_notice(aredis, kind="welcome", to=phone(50), channel="sms", context={"name": "Asha"},
                                 lang="en", dedupe_key="welcome:50", subject="account:50:service")
    workers.start(1)
    key = "a:welcome:50:sms"
    await await_until(lambda: _final(aredis, key), "the attempts to run out", timeout=30)
    sink.up()
    assert await request_retry(aredis, key)
    await await_until(lambda: texts(sink, 50), "the retried welcome")
    assert "Welcome Asha!" in texts(sink, 50)[0]
