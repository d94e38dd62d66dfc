"""Notices through real RQ worker processes to a real SMTP server and a local HTTP sink:
exactly once through provider outages, worker SIGKILLs and redelivered jobs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.workers import ledger
from qtraq_live.workers.ledger import Notice
from qtraq_live.workers.notifier import sweep_abandoned
from tests.support_notify import (NotifyEnv, Sink, SmtpServer, Workers, notify_env, scheduler_worker_pids,  # noqa: F401
                                  sink, smtp, wait_until, workers)


@pytest.fixture
def rq_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def phone(i: int) -> str:
    return f"+9198{i:08d}"


def code_notice(i: int, channel: str = "sms", **overrides: Any) -> Notice:
    fields: dict[str, Any] = dict(
        key=f"a:test-{i}:{channel}", kind="verify_code", channel=channel,
        to=phone(i) if channel == "sms" else f"patient{i}@example.com", lang="en",
        context={"code": f"{100000 + i}", "minutes": 10}, queue="notify-high", subject=f"account:{i}")
    fields.update(overrides)
    return Notice(**fields)


def state(conn: redis.Redis, key: str) -> dict[str, str]:
    return ledger.load(conn, key)


def all_final(conn: redis.Redis, keys_: list[str]) -> bool:
    return all(state(conn, k).get("state") in ("sent", "failed", "dropped") for k in keys_)


def test_sms_reaches_the_gateway_once_and_the_payload_is_erased(
        rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    notice = code_notice(1)
    assert ledger.create(rq_conn, notice, notify_env.settings)
    assert not ledger.create(rq_conn, notice, notify_env.settings)  # a duplicated request adds nothing
    workers.start(1)
    got = wait_until(lambda: sink.to(phone(1)), "the SMS at the sink")
    assert "100001" in got[0]["message"]
    wait_until(lambda: state(rq_conn, notice.key).get("state") == "sent", "state sent")
    record = state(rq_conn, notice.key)
    assert "to" not in record and "ctx" not in record  # nothing personal kept after sending
    assert record["attempts"] == "1" and record["class"] == "accepted"
    assert len(sink.to(phone(1))) == 1


def test_email_through_apprise_mailto_reaches_the_smtp_server(
        rq_conn: redis.Redis, notify_env: NotifyEnv, smtp: SmtpServer, workers: Workers) -> None:
    notice = code_notice(2, channel="email", lang="hi")
    ledger.create(rq_conn, notice, notify_env.settings)
    workers.start(1)
    msg = wait_until(lambda: smtp.messages, "an email")[0]
    assert msg["To"] == "patient2@example.com"
    assert "100002" in str(msg["Subject"]) or "100002" in msg.as_string()
    wait_until(lambda: state(rq_conn, notice.key).get("state") == "sent", "state sent")
    workers.stop_all()
    assert "provider" not in workers.logs() and "patient2" not in workers.logs()  # Apprise logs addresses


def test_redelivered_job_of_a_sent_notice_sends_nothing(
        rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    notice = code_notice(3)
    ledger.create(rq_conn, notice, notify_env.settings)
    workers.start(1)
    wait_until(lambda: state(rq_conn, notice.key).get("state") == "sent", "first send")
    with rq_conn.pipeline() as pipe:  # RQ hands the same job out again
        ledger.enqueue_job(rq_conn, pipe, notice.key, notice.queue, notify_env.settings)
        pipe.execute()
    wait_until(lambda: rq_conn.llen("rq:queue:notify-high") == 0
               and not rq_conn.zcard("rq:wip:notify-high"), "the redelivered job to run")
    assert len(sink.to(phone(3))) == 1


def test_gateway_down_for_a_while_then_up_delivers_everything_once(
        rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    sink.down()
    notices = [code_notice(i) for i in range(20)]
    for n in notices:
        ledger.create(rq_conn, n, notify_env.settings)
    workers.start(2)
    wait_until(lambda: sink.refused >= 20, "the workers to meet the outage")
    sink.up()
    wait_until(lambda: all_final(rq_conn, [n.key for n in notices]), "every notice to finish")
    for i, n in enumerate(notices):
        assert state(rq_conn, n.key)["state"] == "sent", n.key
        assert len(sink.to(phone(i))) == 1
    assert any(int(state(rq_conn, n.key)["attempts"]) > 1 for n in notices)
    workers.stop_all()
    logs = workers.logs()
    assert "provider rejected: Failed to send JSON POST notification" in logs
    assert not any(phone(i)[1:] in logs for i in range(20))  # no phone number in any log line


def test_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
        rq_conn: redis.Redis, redis_url: str, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    notices = [code_notice(i) for i in range(300)]
    for n in notices:
        ledger.create(rq_conn, n, notify_env.settings)
    # The first worker runs the scheduler for both queues; the second is the one killed (a
    # killed scheduler's lock outlives it by a minute, which would only slow this test down).
    (first,) = workers.start(1)
    wait_until(lambda: scheduler_worker_pids(redis_url) == {first.pid}, "the first worker's scheduler")
    (victim,) = workers.start(1)
    wait_until(lambda: len(sink.received) >= 30 and rq_conn.hget(f"rq:worker:{_name_of(rq_conn, victim.pid)}",
                                                                 "state") == b"busy", "both workers busy")
    workers.kill(victim)

    def done() -> bool:
        sweep_abandoned(rq_conn)  # what the primary's notifier does every few seconds
        return all_final(rq_conn, [n.key for n in notices])
    wait_until(done, "every notice to finish", timeout=40)
    unknown = []
    for i, n in enumerate(notices):
        record, delivered = state(rq_conn, n.key), len(sink.to(phone(i)))
        assert delivered <= 1, f"{n.key} sent twice"
        if record["state"] == "sent":
            assert delivered == 1, f"{n.key} marked sent but never arrived"
        else:  # killed between "sending" and "sent": kept for an admin, never resent blindly
            assert (record["state"], record["reason"]) == ("failed", "outcome_unknown"), n.key
            unknown.append(n.key)
    assert len(unknown) <= 1


def _name_of(conn: redis.Redis, pid: int) -> str:
    for key in conn.scan_iter("rq:worker:*", _type="HASH"):
        if conn.hget(key, "pid") == str(pid).encode():
            return key.decode().removeprefix("rq:worker:")
    return ""


def test_template_error_fails_that_notice_clearly_and_no_other(
        rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    broken = code_notice(50, context={"minutes": 10})  # the caller forgot "code"
    good = [code_notice(i) for i in range(51, 54)]
    for n in [broken, *good]:
        ledger.create(rq_conn, n, notify_env.settings)
    workers.start(1)
    wait_until(lambda: all_final(rq_conn, [n.key for n in [broken, *good]]), "all four to finish")
    assert (state(rq_conn, broken.key)["state"], state(rq_conn, broken.key)["reason"]) == ("failed", "template_error")
    assert all(state(rq_conn, n.key)["state"] == "sent" for n in good)
    assert not sink.to(phone(50))
    workers.stop_all()
    assert "template en/verify_code.txt failed: UndefinedError: 'code' is undefined" in workers.logs()


async def test_stale_ahead_notice_and_withdrawn_consent_are_dropped(
        engine: QueueEngine, rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    await engine.create_clinic("c1", "City Clinic")
    await engine.create_queue("c1", "gp", "Dr Rao", "A")
    t = await engine.issue("gp", notify=True)
    check = {"ticket": t["id"], "status": ["waiting"], "queue": "gp", "max_ahead": 3}
    ahead = Notice(key=f"t{t['id']}:ahead:gp:sms", kind="ahead", channel="sms", to=phone(60), lang="en",
                   context={"clinic": "City Clinic", "queue": "Dr Rao", "label": t["label"], "ahead": 0,
                            "eta_min": 5},
                   queue="notify", subject=f"ticket:{t['id']}", clinic="c1", ticket=t["id"], check=check)
    await engine.next("gp")  # called before the "you are next" notice went out
    withdrawn = code_notice(61)
    rq_conn.sadd(keys.NOTIFY_OPTOUT, withdrawn.subject)
    for n in (ahead, withdrawn):
        ledger.create(rq_conn, n, notify_env.settings)
    workers.start(1)
    wait_until(lambda: all_final(rq_conn, [ahead.key, withdrawn.key]), "both to finish")
    assert (state(rq_conn, ahead.key)["state"], state(rq_conn, ahead.key)["reason"]) == ("dropped", "stale")
    assert (state(rq_conn, withdrawn.key)["state"], state(rq_conn, withdrawn.key)["reason"]) == ("dropped", "no_consent")
    assert not sink.received


def test_exhausted_notice_goes_to_dead_letter_and_an_admin_retry_delivers_it(
        rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    sink.down()
    notice = code_notice(70)
    ledger.create(rq_conn, notice, notify_env.settings)
    workers.start(1)
    wait_until(lambda: state(rq_conn, notice.key).get("state") == "failed", "the last attempt", timeout=30)
    record = state(rq_conn, notice.key)
    assert (record["reason"], record["attempts"], record["class"]) == ("attempts_exhausted", "4", "rejected")
    assert sink.refused == 4
    sink.up()
    moved, _ = ledger.transition(rq_conn, notice.key, ("failed",), "queued")  # what request_retry does
    assert moved and ledger.requeue(rq_conn, notice.key, notify_env.settings)
    wait_until(lambda: sink.to(phone(70)), "the retried SMS")
    wait_until(lambda: state(rq_conn, notice.key).get("state") == "sent", "state sent")


def test_a_retry_while_the_last_rounds_job_is_still_live_gets_its_own_job_and_sends_once(
        rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    # RQ runs the failure callback (notice -> failed) before it files the job as failed: an
    # admin's retry in that window meets a job that is still live. Reproduced here with the
    # first round's job still waiting in its queue when the notice is failed and retried.
    notice = code_notice(71)
    ledger.create(rq_conn, notice, notify_env.settings)
    assert ledger.transition(rq_conn, notice.key, ("queued",), "failed", reason="attempts_exhausted")[0]
    assert ledger.transition(rq_conn, notice.key, ("failed",), "queued")[0]
    assert ledger.requeue(rq_conn, notice.key, notify_env.settings)
    assert ledger.requeue(rq_conn, notice.key, notify_env.settings)  # the retry request replayed
    assert state(rq_conn, notice.key)["round"] == "2"
    assert rq_conn.exists(*(f"rq:job:{ledger.job_id(notice.key, r)}" for r in range(3))) == 3
    workers.start(1)
    wait_until(lambda: state(rq_conn, notice.key).get("state") == "sent", "state sent")
    wait_until(lambda: not rq_conn.llen("rq:queue:notify-high"), "both jobs to run")
    workers.stop_all()
    assert len(sink.to(phone(71))) == 1  # the earlier rounds' jobs stood down


def test_worker_with_an_invalid_apprise_url_stops_at_start_naming_the_key(
        notify_env: NotifyEnv, workers: Workers) -> None:
    notify_env.reconfigure(sms="json:/missing-slashes/{to}")
    (proc,) = workers.start(1)
    assert wait_until(lambda: proc.poll() is not None, "the worker to exit") and proc.returncode != 0
    assert "notify.sms" in workers.logs() and "not a valid Apprise URL" in workers.logs()
