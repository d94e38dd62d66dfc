"""A notice's states and the one atomic step that moves it (see ledger.py for the diagram).

The RQ jobs (jobs.py) and the web side move notices through :func:`transition`; ledger.py
creates them and enqueues their jobs.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from ..engine import redis_keys as keys

QUEUED, SENDING, RETRYING, SENT, FAILED, DROPPED = "queued", "sending", "retrying", "sent", "failed", "dropped"
STATES = (QUEUED, SENDING, RETRYING, SENT, FAILED, DROPPED)
KEEP_DONE_S = 3 * 86400  # a sent or dropped key still dedupes replays this long
KEEP_FAILED_S = 7 * 86400  # a failed notice (payload kept) can be retried this long
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


def now_ms() -> int:
    return int(time.time() * 1000)



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
