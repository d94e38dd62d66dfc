"""The RQ job that sends an on-share reply, retried on gateway failures and never sent twice.

The reply waits in Redis under the inbound REQUEST-ID (``qt:abdm:reply:{id}``: ``body`` and
``state``). The job moves ``state`` through ``queued → sending → sent``; a gateway 5xx or a
network error sets ``retry`` and raises, so RQ tries again later (``Retry`` with backoff); a
4xx, or the last attempt failing, ends in ``failed``. A job that finds ``sending`` knows an
earlier attempt died in the middle of its call and the gateway may have the reply: it records
``unknown`` and does not send again (one token number, one reply).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from rq import Queue, Retry, get_current_job

from ..config import Settings, load_settings
from ..engine import redis_keys as keys
from ..metrics import ABDM_REPLIES
from ..runtime import redis_conn
from .gateway import Gateway, GatewayError

log = logging.getLogger(__name__)

QUEUE = "notify-high"  # a reply is an outbound message like a call notice: every worker serves it
RETRIES = 5
JOB_TIMEOUT_S = 60
KEEP_S = 86_400  # a reply's record, for a redelivered share and for the admin to look at


_SETTINGS: Settings | None = None  # this worker process's, set by configure()


def configure(settings: Settings) -> None:
    """Give this process's jobs their settings (``workers.worker.make_worker`` calls it)."""
    global _SETTINGS
    _SETTINGS = settings


def _settings() -> Settings:
    if _SETTINGS is None:  # a job run by a plain `rq worker`: the same config as `serve`
        configure(load_settings(resolve_secret=False))
    assert _SETTINGS is not None
    return _SETTINGS


def retry_intervals(settings: Settings) -> list[int]:
    """Seconds before each retry: ``abdm.retry_base_s``, tripled each time."""
    return [settings["abdm.retry_base_s"] * 3**i for i in range(RETRIES)]


def enqueue(conn: redis.Redis, settings: Settings, request_id: str, body: dict[str, Any]) -> bool:
    """Record the reply and queue its job, once per REQUEST-ID; False when it exists already."""
    key = keys.abdm_reply(request_id)
    if not conn.hsetnx(key, "state", "queued"):
        return False
    intervals = retry_intervals(settings)
    with conn.pipeline() as pipe:  # the body and the job together
        pipe.multi()
        pipe.hset(key, "body", json.dumps(body, separators=(",", ":")))
        pipe.expire(key, KEEP_S)
        Queue(QUEUE, connection=conn).enqueue_call(
            send_on_share, args=(request_id,), job_id=f"abdm-on-share-{request_id}", timeout=JOB_TIMEOUT_S,
            result_ttl=0, failure_ttl=KEEP_S,
            retry=Retry(max=len(intervals), interval=intervals),  # type: ignore[arg-type]
            pipeline=pipe)
        pipe.execute()
    return True


def _state(conn: redis.Redis, key: str) -> str:
    raw = conn.hget(key, "state")
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")


def send_on_share(request_id: str) -> str:
    """Send one reply; returns the final state (``sent``, ``failed``, ``unknown``) or raises
    for RQ to retry."""
    settings = _settings()
    conn = redis_conn.sync_client(settings, decode=False)
    key = keys.abdm_reply(request_id)
    try:
        state = _state(conn, key)
        if state in ("sent", "failed", "unknown", ""):
            return state or "gone"  # done before, or expired: never twice
        if state == "sending":
            conn.hset(key, "state", "unknown")
            ABDM_REPLIES.labels("unknown").inc()
            log.warning("abdm: on-share %s: an earlier attempt died mid-call; not sent again", request_id)
            return "unknown"
        raw = conn.hget(key, "body")
        body = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        conn.hset(key, "state", "sending")
        gateway = Gateway(settings, conn)
        try:
            gateway.on_share(body)
        except GatewayError as exc:
            job = get_current_job()
            last = job is None or not job.retries_left
            if exc.retry and not last:
                conn.hset(key, "state", "retry")
                ABDM_REPLIES.labels("retried").inc()
                log.warning("abdm: on-share %s: %s; will retry", request_id, exc.message)
                raise
            conn.hset(key, mapping={"state": "failed", "error": exc.message})
            ABDM_REPLIES.labels("failed").inc()
            log.error("abdm: on-share %s failed: %s", request_id, exc.message)
            return "failed"
        finally:
            gateway.close()
        conn.hset(key, "state", "sent")
        ABDM_REPLIES.labels("sent").inc()
        log.info("abdm: on-share %s sent", request_id)
        return "sent"
    finally:
        conn.close()
