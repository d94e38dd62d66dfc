"""The RQ jobs: send one notice, and record it as failed when RQ gives up on it.

A job carries only the notice key; everything else is in the notice's hash (see ledger.py),
so a worker needs Redis and the config, never SQLite. Right before sending, the job checks
again that the notice still makes sense: consent not withdrawn, the ticket still in the state
the notice speaks of, still within the "N ahead" threshold, the queue still paused.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import jinja2
import redis
from rq import get_current_job
from rq.job import Job

from ..config import Settings, load_settings
from ..engine import live_reads
from ..engine import redis_keys as keys
from ..errors import Unavailable
from . import channels, dlt, notice_states, webpush
from .notice_states import DROPPED, FAILED, QUEUED, RETRYING, SENDING, SENT
from .render import render

log = logging.getLogger(__name__)

_SETTINGS: Settings | None = None  # this worker process's settings, set by configure()


def configure(settings: Settings) -> None:
    """Give this process's jobs their settings (``run_worker`` calls it before working)."""
    global _SETTINGS
    channels.configured(settings)  # a bad URL stops the worker at start, naming the key
    dlt.check(settings)  # so does a notice kind without its DLT template id
    # Apprise logs recipients ("Sent Email to asha@…"): its records stay out of our logs;
    # channels.send() reports its warnings with the recipient masked.
    logging.getLogger("apprise").propagate = False
    _SETTINGS = settings


def _config() -> Settings:
    if _SETTINGS is None:  # a job run by a plain `rq worker`: read the same config as `serve`
        configure(load_settings())
    assert _SETTINGS is not None
    return _SETTINGS


def _text(v: Any) -> str | None:
    return None if v is None else v.decode() if isinstance(v, bytes) else str(v)


def stale_reason(conn: redis.Redis, notice: dict[str, str], context: dict[str, Any]) -> str:
    """Why the notice should not go out now ("" when it should); refreshes ``ahead``."""
    if conn.sismember(keys.NOTIFY_OPTOUT, notice["subject"]):
        return "no_consent"
    check = json.loads(notice.get("check") or "{}")
    if "ticket" in check:
        live = live_reads.ticket_status(conn, check["ticket"])
        if live is None:
            return "stale"
        status, queue, notify = live
        if not notify:
            return "no_consent"
        if status not in check.get("status", [status]) or queue != check.get("queue", queue):
            return "stale"
        if "max_ahead" in check:
            rank = live_reads.waiting_rank(conn, queue, check["ticket"])
            if rank is None or rank > check["max_ahead"]:
                return "stale"
            context["ahead"] = rank
    if "paused_queue" in check and not live_reads.queue_paused(conn, check["paused_queue"]):
        return "stale"
    return ""


def channel_url(conn: redis.Redis, settings: Settings, clinic: str, channel: str) -> str:
    """The URL template for this clinic and channel ("" when none is configured)."""
    override = _text(conn.hget(keys.notify_channels(clinic), channel)) if clinic else None
    return override or settings[f"notify.{channel}"].strip()


def _round(notice: dict[str, str]) -> int:
    return int(notice.get("round") or 0)


def send_notice(key: str, round_: int = 0) -> str:
    """Re-check, render and send notice ``key``; returns what happened (for RQ's logs)."""
    job = get_current_job()
    assert job is not None
    conn, settings = job.connection, _config()
    notice = notice_states.load(conn, key)
    state = notice.get("state", "")
    if notice and _round(notice) != round_:
        return "superseded"  # an admin's retry started a new round with its own job
    if state == SENDING:
        # An earlier run died between "sending" and "sent": the provider may have the message.
        # Sending again could deliver it twice, so it goes to the admin's list instead.
        notice_states.transition(conn, key, (SENDING,), FAILED, reason="outcome_unknown")
        log.warning("notice %s: an earlier attempt died while sending; not resent (outcome unknown)", key)
        return "outcome_unknown"
    if state not in (QUEUED, RETRYING):
        return state or "expired"  # a duplicate or redelivered job: already handled
    context: dict[str, Any] = json.loads(notice["ctx"])
    reason = stale_reason(conn, notice, context)
    if reason:
        notice_states.transition(conn, key, (QUEUED, RETRYING), DROPPED, reason=reason)
        log.info("notice %s dropped: %s", key, reason)
        return DROPPED
    sms = notice["channel"] == "sms"
    lang = dlt.sms_lang(settings, notice["kind"], notice["lang"]) if sms else notice["lang"]
    try:
        subject, body = render(notice["kind"], lang, context)
    except jinja2.TemplateError as exc:
        notice_states.transition(conn, key, (QUEUED, RETRYING), FAILED, reason="template_error")
        log.error("notice %s: template %s/%s.txt failed: %s: %s", key, notice["lang"], notice["kind"],
                  type(exc).__name__, exc)
        return FAILED
    push = notice["channel"] == webpush.WEB_PUSH
    template = "" if push else channel_url(conn, settings, notice["clinic"], notice["channel"])
    if not template and not push:
        notice_states.transition(conn, key, (QUEUED, RETRYING), FAILED, reason="no_channel")
        log.error("notice %s: no URL configured for channel %s", key, notice["channel"])
        return FAILED
    moved, _ = notice_states.transition(conn, key, (QUEUED, RETRYING), SENDING)
    if not moved:
        return "taken"  # another run of the same job got there first
    if push:
        answer, detail = _push(conn, settings, notice, subject, body)
        if answer == webpush.GONE:  # its other channels take over (the notifier knows them)
            conn.xadd(keys.NOTICE_REQUESTS, {"r": json.dumps(webpush.fallback_request(notice, key))})
            notice_states.transition(conn, key, (SENDING,), DROPPED, reason="subscription_gone", rclass=channels.REJECTED)
            log.info("notice %s: push subscription gone (%s); sent by the other channels", key, detail)
            return DROPPED
    else:
        url = channels.fill(template, notice["to"])
        if sms:
            url = dlt.apply(url, settings, notice["kind"], lang)  # the registered sender and template id
        answer, detail = channels.send(url, subject, body, notice["to"])
    if answer == channels.ACCEPTED:
        notice_states.transition(conn, key, (SENDING,), SENT, rclass=answer)
        return SENT
    if answer == channels.TIMEOUT:
        notice_states.transition(conn, key, (SENDING,), FAILED, reason="outcome_unknown", rclass=answer)
        log.warning("notice %s: provider timed out; not resent (outcome unknown): %s", key, detail)
        return FAILED
    notice_states.transition(conn, key, (SENDING,), RETRYING, rclass=answer)
    log.warning("notice %s: provider %s: %s", key, answer, detail)
    raise Unavailable(f"notice {key}: provider {answer}")


def _push(conn: redis.Redis, settings: Settings, notice: dict[str, str], subject: str, body: str) -> tuple[str, str]:
    """A Web Push notice to the ticket's browser; a tap opens the ticket page."""
    token = live_reads.ticket_token(conn, notice["ticket"]) or ""
    data = webpush.payload(subject, body, notice["kind"], f"/t/{token}" if token else "/")
    # Imported here, not at the top: the primary imports this module (to enqueue these jobs)
    # and must not load pywebpush's HTTP stack; a worker has imported it at start (worker.py).
    from . import push_send

    return push_send.send(conn, settings, notice["ticket"], data)


def notice_failed(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    """RQ's failure callback (also for a job whose worker died): final failure only."""
    if job.retries_left:
        return  # RQ will run it again
    key = str(job.args[0])
    round_ = int(job.args[1]) if len(job.args) > 1 else 0
    if _round(notice_states.load(connection, key)) != round_:
        return  # a previous round's job: the admin's retry has its own
    moved, before = notice_states.transition(connection, key, (QUEUED, RETRYING), FAILED,
                                      reason="attempts_exhausted")
    if not moved and before == SENDING:
        notice_states.transition(connection, key, (SENDING,), FAILED, reason="outcome_unknown")
    if moved or before == SENDING:
        log.warning("notice %s failed after its last attempt (%s)", key, before)
