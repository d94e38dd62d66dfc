"""Sending one Web Push message: RFC 8291 encryption and VAPID signing (``pywebpush``).

Only the workers import this (at start, worker.py; jobs.py imports it where it sends): ``pywebpush``
brings an HTTP stack (aiohttp, requests) that the other processes should not load. See webpush.py
for the rest.
"""

from __future__ import annotations

import redis
import requests
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush as push

from ..config import Settings
from ..engine import redis_keys as keys
from . import vapid, webpush
from .channels import ACCEPTED, REJECTED, TIMEOUT, UNREACHABLE

GONE_STATUS = (404, 410)
MESSAGE_TTL_S = 3600  # a phone offline longer than this would get stale news
SEND_TIMEOUT_S = 10.0


def send(conn: redis.Redis, settings: Settings, ticket_id: int | str, data: str) -> tuple[str, str]:
    """Push ``data`` to the ticket's browser: ``(answer, detail)`` as channels.send answers,
    or ``gone`` (subscription deleted here) when the push service no longer knows it."""
    sub = webpush.subscription(conn, ticket_id)
    if sub is None:
        return webpush.GONE, "no subscription"
    pem = vapid.private_pem(conn)
    if pem is None:
        return REJECTED, "no VAPID key in Redis yet (the primary publishes it at start)"
    try:
        push(sub, data=data, vapid_private_key=Vapid02.from_pem(pem), vapid_claims={"sub": webpush.contact(settings)},
             ttl=MESSAGE_TTL_S, timeout=SEND_TIMEOUT_S, headers={"Urgency": "high"})
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status in GONE_STATUS:
            conn.delete(keys.push_subscription(ticket_id))
            return webpush.GONE, f"push service answered {status}"
        return REJECTED, f"push service answered {status or 'nothing'}"
    except requests.Timeout:
        return TIMEOUT, "push service timed out"
    except requests.RequestException as exc:
        return UNREACHABLE, f"push service unreachable ({type(exc).__name__})"
    return ACCEPTED, ""
