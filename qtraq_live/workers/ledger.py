"""The record of each notice in Redis: what makes "exactly once, as users see it" hold.

Each notice has a deterministic key (``t{ticket}:{kind}:{version}:{channel}`` for queue
notices, ``a:{dedupe_key}:{channel}`` for account notices) and a hash ``qt:notice:{key}``.
Its ``state`` moves only through :data:`TRANSITION_LUA`, which also appends the change to the
delivery stream ``qt:notice:log`` in the same atomic step::

    queued ──▶ sending ──▶ sent
      ▲  │        │  └────▶ retrying ──▶ sending …   (provider said no or was unreachable)
      │  │        └───────▶ failed (outcome_unknown)  (timeout, or found "sending" after a crash)
      │  └──────────────▶ dropped (stale, no consent, no channel)
      │  └──────────────▶ failed (template_error, attempts exhausted)
      └── failed (an admin's retry)

Creating the hash, logging "queued" and enqueueing the RQ job happen in one MULTI guarded by
WATCH, so a replayed event or a duplicated request finds the key and adds nothing, and a crash
can never leave a key without its job. The payload (recipient, context) is deleted as soon as a
notice is sent or dropped; the RQ job carries only the key.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Queue, Retry

from ..config import Settings
from ..engine import redis_keys as keys
from .jobs import notice_failed, send_notice
from .notice_states import (DROPPED, FAILED, KEEP_DONE_S, KEEP_FAILED_S, LOG_MAXLEN, QUEUED,  # noqa: F401
                            RETRYING, SENDING, SENT, STATES, TRANSITION_LUA, load, now_ms, transition,
                            transition_args)  # the state machine, named here too: ledger.X stays valid

MAX_RETRY_S = 3600.0


@dataclass(frozen=True)
class Notice:
    """One message to one recipient on one channel. ``check`` is re-tested before sending."""

    key: str
    kind: str
    channel: str
    to: str
    lang: str
    context: Mapping[str, Any]
    queue: str
    subject: str  # consent subject: "ticket:12", "account:7"
    clinic: str = ""
    ticket: int | None = None
    check: Mapping[str, Any] = field(default_factory=dict)


def job_id(key: str, round_: int = 0) -> str:
    """RQ job ids allow only letters, digits, ``_`` and ``-``; the notice key is hashed.

    Each admin retry starts a new round with its own job, so it never waits on (or is
    overwritten by) the previous round's job while RQ is still finishing it."""
    base = "notice-" + hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{base}-r{round_}" if round_ else base


def hint(to: str) -> str:
    """Enough of a recipient for an admin to tell two apart, not to contact them."""
    if "@" in to:
        user, _, domain = to.partition("@")
        return f"{user[:1]}***@{domain}"
    return f"{to[:3]}***{to[-2:]}" if len(to) > 6 else "***"


def retry_intervals(settings: Settings) -> list[float]:
    """Exponential backoff with ±25% jitter, fixed per job when it is enqueued."""
    base = settings["notify.retry_base_ms"] / 1000
    return [min(MAX_RETRY_S, base * 2**i) * random.uniform(0.75, 1.25)
            for i in range(settings["notify.max_attempts"] - 1)]


def enqueue_job(conn: redis.Redis, pipe: Any, key: str, queue: str, settings: Settings,
                round_: int = 0) -> None:
    """Queue the RQ job that sends notice ``key`` (inside the caller's MULTI)."""
    intervals = retry_intervals(settings)
    Queue(queue, connection=conn).enqueue_call(
        send_notice, args=(key, round_) if round_ else (key,), job_id=job_id(key, round_), timeout=settings["notify.job_timeout_s"],
        result_ttl=0, failure_ttl=KEEP_FAILED_S, on_failure=notice_failed,
        # RQ schedules retries with timedelta(seconds=…), so fractional seconds work (its hint says int)
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,  # type: ignore[arg-type]
        pipeline=pipe)


def create(conn: redis.Redis, notice: Notice, settings: Settings) -> bool:
    """Record and enqueue a notice once; False when its key already exists."""
    nkey = keys.notice(notice.key)
    stamp = str(now_ms())
    with conn.pipeline() as pipe:
        try:
            pipe.watch(nkey)  # type: ignore[no-untyped-call]
            if pipe.exists(nkey):
                return False
            pipe.multi()
            pipe.hset(nkey, mapping={
                "state": QUEUED, "kind": notice.kind, "channel": notice.channel, "queue": notice.queue,
                "clinic": notice.clinic, "ticket": "" if notice.ticket is None else str(notice.ticket),
                "hint": hint(notice.to), "lang": notice.lang, "to": notice.to, "subject": notice.subject,
                "ctx": json.dumps(notice.context), "check": json.dumps(notice.check), "attempts": 0,
                "reason": "", "class": "", "created": stamp, "updated": stamp})
            pipe.xadd(keys.NOTICE_LOG, {"key": notice.key, "state": QUEUED, "reason": "", "class": "",
                                        "attempt": 0, "at": stamp, "kind": notice.kind,
                                        "channel": notice.channel, "clinic": notice.clinic,
                                        "ticket": "" if notice.ticket is None else str(notice.ticket),
                                        "hint": hint(notice.to), "created": stamp},
                      maxlen=LOG_MAXLEN, approximate=True)
            enqueue_job(conn, pipe, notice.key, notice.queue, settings)
            pipe.execute()
        except redis.WatchError:
            return False
    return True


def requeue(conn: redis.Redis, key: str, settings: Settings) -> bool:
    """A fresh job for a notice an admin put back to "queued": a new round with a new job id.

    The previous round's job may still be finishing in its worker (RQ runs the failure
    callback that marks the notice failed before it files the job as failed); it keeps its
    own id, and ``send_notice``/``notice_failed`` ignore a job whose round is not the notice's.
    """
    nkey = keys.notice(key)
    with conn.pipeline() as pipe:
        try:
            pipe.watch(nkey)  # type: ignore[no-untyped-call]
            notice = load(pipe, key)  # a watching pipeline answers at once
            if notice.get("state") != QUEUED:
                return False
            round_ = int(notice.get("round") or 0) + 1
            pipe.multi()
            pipe.hset(nkey, "round", round_)
            enqueue_job(conn, pipe, key, notice["queue"], settings, round_)
            pipe.execute()
        except redis.WatchError:
            return False
    return True
