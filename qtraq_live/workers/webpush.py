"""Web Push (RFC 8030/8291/8292): the free channel, sent by the workers like every notice.

A ticket's subscription (the browser's ``PushSubscription`` JSON) is the Redis string
``qt:push:{ticket}``, written by ``POST /api/v1/t/{token}/push`` and living as long as the
ticket. While it exists the notifier sends that ticket's notices here instead of SMS or
WhatsApp. The payload is encrypted for the browser (``aes128gcm``) and signed with the
server's VAPID key (workers/vapid.py); the push service answers 201. A 404 or 410 means the
subscription is gone (the patient revoked it, or the browser dropped it): it is deleted, and
the notice falls back to the ticket's other channels (:func:`fallback_request`).

This module is light (the notifier imports it inside the primary's event loop); the sending
itself, with ``pywebpush`` and its HTTP stack, is in push_send.py, which only workers load.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from ..config import Settings
from ..engine import redis_keys as keys

WEB_PUSH = "webpush"  # the channel name in notice keys and the delivery log
GONE = "gone"  # the push service says the subscription no longer exists


def recipient(ticket_id: int | str) -> str:
    """What a push notice's ``to`` holds: no address, only whose subscription to read."""
    return f"push:{ticket_id}"


def contact(settings: Settings) -> str:
    """The ``sub`` claim: how a push service may reach the sender."""
    given = settings["notify.web_push_contact"] or settings["server.public_url"]
    return str(given) if given else "mailto:admin@localhost"


def subscription(conn: redis.Redis, ticket_id: int | str) -> dict[str, Any] | None:
    raw: Any = conn.get(keys.push_subscription(ticket_id))
    return json.loads(raw) if raw else None


def payload(title: str, body: str, kind: str, url: str) -> str:
    """What the service worker shows (display/static/push_sw.js)."""
    return json.dumps({"title": title, "body": body, "tag": kind, "url": url}, ensure_ascii=False)


def fallback_request(notice: dict[str, str], key: str) -> dict[str, Any]:
    """The notifier request that sends a notice whose subscription is gone by the ticket's
    other channels (the worker has no SQLite, where their addresses are)."""
    return {"op": "fallback", "key": key, "kind": notice["kind"], "lang": notice["lang"],
            "clinic": notice["clinic"], "ticket": int(notice["ticket"]), "queue": notice["queue"],
            "context": json.loads(notice.get("ctx") or "{}"), "check": json.loads(notice.get("check") or "{}")}
