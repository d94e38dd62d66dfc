"""What other areas call: account notices, consent changes, an admin's retry.

All three only touch Redis (any process may call them, with the async decoded client); the
notifier on the primary turns requests into notices and RQ jobs, so a duplicated request
with the same ``dedupe_key`` sends one message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..errors import Invalid
from . import ledger
from .channels import CHANNELS
from .render import LANGS

ACCOUNT_KINDS = ("welcome", "verify_code", "appointment_booked", "appointment_reminder", "appointment_cancelled",
                 "contact_in_use")
# Patient services (#22): an admin's notice to accounts, and security notices (not switchable off).
ACCOUNT_KINDS += ("admin_notice", "security_login", "security_password", "security_erasure")
ACCOUNT_KINDS += ("security_breach",)  # to the people a personal data breach concerns (record/breach_report.py)
ADMIN_KINDS = ("test",)  # an admin checking a channel from /admin
# answers to a patient's SMS or WhatsApp message (qtraq_live/inbound); a called patient gets the call
# again, a skipped one the "skipped" text
REPLY_KINDS = ("reply_confirmed", "reply_late", "reply_late_refused", "reply_cancelled", "reply_status",
               "reply_help", "called", "skipped")


async def enqueue_account_notice(redis: aioredis.Redis, *, kind: str, to: str, channel: str,
                                 context: Mapping[str, Any], lang: str, dedupe_key: str,
                                 subject: str, clinic: str = "") -> None:
    """Ask for one account notice. ``subject`` ("account:7") is the consent it depends on;
    ``clinic`` (optional) picks that clinic's channel URLs. Codes go on ``notify-high``."""
    if kind not in ACCOUNT_KINDS + ADMIN_KINDS + REPLY_KINDS:
        raise Invalid("kind", f"must be one of {', '.join(ACCOUNT_KINDS + ADMIN_KINDS + REPLY_KINDS)}")
    if channel not in CHANNELS:
        raise Invalid("channel", f"must be one of {', '.join(CHANNELS)}")
    if lang not in LANGS:
        raise Invalid("lang", f"must be one of {', '.join(LANGS)}")
    if not dedupe_key or len(dedupe_key) > 200:
        raise Invalid("dedupe_key", "must be 1 to 200 characters")
    request = {"op": "notice", "kind": kind, "to": to, "channel": channel, "context": dict(context),
               "lang": lang, "dedupe_key": dedupe_key, "subject": subject, "clinic": clinic}
    await redis.xadd(keys.NOTICE_REQUESTS, {"r": json.dumps(request)})


async def set_consent(redis: aioredis.Redis, subject: str, notifications: bool) -> None:
    """Record a consent change. Withdrawal takes effect at once: every job checks it right
    before sending, so pending notices of ``subject`` are dropped, not sent."""
    if notifications:
        await redis.srem(keys.NOTIFY_OPTOUT, subject)
    else:
        await redis.sadd(keys.NOTIFY_OPTOUT, subject)


async def request_retry(redis: aioredis.Redis, key: str) -> bool:
    """Put a failed notice back in line (False when it is not failed, or has expired).

    The state change and the request to the notifier are one MULTI; the notifier enqueues a
    job only for a notice that is still queued and has no live job (see ledger.requeue).
    """
    ks, argv = ledger.transition_args(key, (ledger.FAILED,), ledger.QUEUED, reset_attempts=True)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.eval(ledger.TRANSITION_LUA, len(ks), *ks, *argv)
        pipe.xadd(keys.NOTICE_REQUESTS, {"r": json.dumps({"op": "retry", "key": key})})
        (ok, _), _ = await pipe.execute()
    return bool(ok == "ok")
