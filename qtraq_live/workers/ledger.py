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
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

from .. import redis_keys as keys
from ..config import Settings

QUEUED, SENDING, RETRYING, SENT, FAILED, DROPPED = "queued", "sending", "retrying", "sent", "failed", "dropped"
STATES = (QUEUED, SENDING, RETRYING, SENT, FAILED, DROPPED)
KEEP_DONE_S = 3 * 86400  # a sent or dropped key still dedupes replays this long
KEEP_FAILED_S = 7 * 86400  # a failed notice (payload kept) can be retried this long
MAX_RETRY_S = 3600.0
LOG_MAXLEN = 100_000

TRANSITION_LUA = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'no', ''} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == st then allowed = true end end
if not allowed then return {'no', st} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if ARGV[9] == '1' then attempts = 0 end
if ARGV[3] == 'sending' then attempts = attempts + 1 end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'attempts', attempts, 'reason', ARGV[4], 'updated', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'class', ARGV[5]) end
if ARGV[8] == '1' then redis.call('HDEL', KEYS[1], 'to', 'ctx') end
if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[7]) else redis.call('PERSIST', KEYS[1]) end
local m = redis.call('HMGET', KEYS[1], 'kind', 'channel', 'clinic', 'ticket', 'hint', 'created')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], '*', 'key', ARGV[1], 'state', ARGV[3],
           'reason', ARGV[4], 'class', ARGV[5], 'attempt', attempts, 'at', ARGV[6],
           'kind', m[1] or '', 'channel', m[2] or '', 'clinic', m[3] or '', 'ticket', m[4] or '',
           'hint', m[5] or '', 'created', m[6] or '')
return {'ok', st}
"""


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


def now_ms() -> int:
    return int(time.time() * 1000)


def job_id(key: str) -> str:
    """RQ job ids allow only letters, digits, ``_`` and ``-``; the notice key is hashed."""
    return "notice-" + hashlib.sha256(key.encode()).hexdigest()[:40]


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


def enqueue_job(conn: redis.Redis, pipe: Any, key: str, queue: str, settings: Settings) -> None:
    """Queue the RQ job that sends notice ``key`` (inside the caller's MULTI)."""
    from .jobs import notice_failed, send_notice

    intervals = retry_intervals(settings)
    Queue(queue, connection=conn).enqueue_call(
        send_notice, args=(key,), job_id=job_id(key), timeout=settings["notify.job_timeout_s"],
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


def transition_args(key: str, from_states: tuple[str, ...], to: str, *, reason: str = "",
                    rclass: str = "", reset_attempts: bool = False) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of :data:`TRANSITION_LUA` (shared by the sync worker and async web side)."""
    ttl = {SENT: KEEP_DONE_S, DROPPED: KEEP_DONE_S, FAILED: KEEP_FAILED_S}.get(to, 0)
    drop_payload = to in (SENT, DROPPED)
    return ([keys.notice(key), keys.NOTICE_LOG],
            [key, ",".join(from_states), to, reason, rclass, now_ms(), ttl, "1" if drop_payload else "0",
             "1" if reset_attempts else "0", LOG_MAXLEN])


def _decode(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def transition(conn: redis.Redis, key: str, from_states: tuple[str, ...], to: str, *,
               reason: str = "", rclass: str = "") -> tuple[bool, str]:
    """Move notice ``key`` to ``to`` if it is in one of ``from_states``: ``(moved, state before)``."""
    ks, argv = transition_args(key, from_states, to, reason=reason, rclass=rclass)
    ok, before = conn.register_script(TRANSITION_LUA)(keys=ks, args=argv)
    return _decode(ok) == "ok", _decode(before)


def load(conn: redis.Redis, key: str) -> dict[str, str]:
    """The notice's hash, decoded (empty when unknown or expired)."""
    return {_decode(k): _decode(v) for k, v in conn.hgetall(keys.notice(key)).items()}


LIVE_JOB = ("queued", "started", "scheduled", "deferred")


def requeue(conn: redis.Redis, key: str, settings: Settings) -> bool:
    """A fresh job for a notice an admin put back to "queued" (its old RQ job is replaced)."""
    notice = load(conn, key)
    if notice.get("state") != QUEUED:
        return False
    try:
        old = Job.fetch(job_id(key), connection=conn)
    except NoSuchJobError:
        old = None
    if old is not None:
        if old.get_status() in LIVE_JOB:
            return False  # still on its way: nothing to add
        old.delete()
    with conn.pipeline() as pipe:
        enqueue_job(conn, pipe, key, notice["queue"], settings)
        pipe.execute()
    return True
