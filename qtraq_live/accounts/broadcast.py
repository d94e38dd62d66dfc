"""Notices from the clinic to its accounts, and the security notices no one can switch off.

An admin's notice has a purpose, and each purpose needs its own consent (docs/notices-admin.md):

    updates      news about the service           the account's ``marketing`` consent
    maintenance  downtime, changed opening hours  the account's ``notifications`` consent
    security     a breach, a forced reset         every verified account (no consent needed)

Every notice goes through the exactly-once ledger with a key per (notice, account, contact),
only to verified contacts. Security notices about the account itself (a login from a new
device or browser, a password change) go the same way, whatever the account's consent, and
have no switch; the notice of an erasure goes straight to the provider (see :func:`send_erasure`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aioredis

from ..config import Settings
from ..record.store import Store
from ..validation import Field, Schema
from ..workers import channels, render
from . import notices

log = logging.getLogger(__name__)

Json = dict[str, Any]
PURPOSE_CONSENT: dict[str, str | None] = {"updates": "marketing", "maintenance": "notifications", "security": None}
CHANNELS = ("email", "sms", "whatsapp")
_LINE = r"^[^\r\n]*\S[^\r\n]*$"  # one line, not blank: a subject can never add a mail header
BODY = Schema({
    "purpose": Field("string", required=True, enum=tuple(PURPOSE_CONSENT)),
    "channels": Field("array", required=True, min_length=1, max_length=len(CHANNELS),
                      items=Field("string", enum=CHANNELS)),
    "subject": Field("string", required=True, min_length=1, max_length=120, pattern=_LINE),
    "text": Field("string", required=True, min_length=1, max_length=1000, pattern=r"(?s).*\S.*"),
    "dry_run": Field("boolean", default=False, description="count the recipients and show the text; send nothing"),
})


def security_subject(account_id: int) -> str:
    """The consent subject of security notices: never put in the opt-out set."""
    return f"account:{account_id}:security"


async def _audience(store: Store, purpose: str) -> list[Json]:
    """Accounts with a verified contact that consented (newest choice) to ``purpose``."""
    needed = PURPOSE_CONSENT[purpose]
    consent_clause = "" if needed is None else (
        f" AND coalesce((SELECT h.{needed} FROM account_consent_history h WHERE h.account_id = a.id"
        " ORDER BY h.id DESC LIMIT 1), 0) = 1")
    return await store.fetchall(
        "SELECT a.* FROM accounts a WHERE ((a.email IS NOT NULL AND a.email_verified = 1)"
        f" OR (a.mobile IS NOT NULL AND a.mobile_verified = 1)){consent_clause} ORDER BY a.id")


def _subject(purpose: str, account_id: int) -> str:
    """The consent subject a pending notice is dropped by: withdrawing notifications drops
    maintenance notices; updates (marketing) and security ones go unless the account is erased."""
    if purpose == "maintenance":
        return notices.subject(account_id)
    return security_subject(account_id) if purpose == "security" else notices.service_subject(account_id)


def _reachable(account: Json, settings: Settings, channels: tuple[str, ...]) -> bool:
    return any(account[c] and account[f"{c}_verified"] and notices.contact_channel(c, settings, channels)
               for c in ("email", "mobile"))


async def send(store: Store, redis: aioredis.Redis, settings: Settings, body: Json, actor: str,
               now_ms: int) -> Json:
    """Count (``dry_run``) or send an admin's notice; returns ``{recipients, dry_run, preview}``
    and, when sent, the notice's ``id``."""
    channels = tuple(dict.fromkeys(body["channels"]))
    audience = [a for a in await _audience(store, body["purpose"]) if _reachable(a, settings, channels)]
    context = {"subject": body["subject"], "text": body["text"]}
    out: Json = {"recipients": len(audience), "dry_run": body["dry_run"], "preview": context}
    if body["dry_run"]:
        return out
    written = await store.execute(
        "INSERT INTO admin_notices (purpose, channels, subject, text, recipients, sent_by, created_at)"
        " VALUES (?,?,?,?,?,?,?)", (body["purpose"], json.dumps(channels), body["subject"], body["text"],
                                    len(audience), actor, now_ms))
    notice_id = int(written.lastrowid or 0)
    for account in audience:
        subject = _subject(body["purpose"], account["id"])
        await notices.send_verified(redis, account, settings, kind="admin_notice", context=context,
                                    dedupe=f"acct{account['id']}:notice{notice_id}", subject_=subject,
                                    allowed=channels)
    log.info("admin notice %d (%s) sent to %d accounts", notice_id, body["purpose"], len(audience))
    return {**out, "id": notice_id}


# -- security notices about the account itself --------------------------------------------------------

def _at(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _family(name: str) -> str:
    """"Chrome 120" and "Chrome 121" are one browser: an update is not a new device."""
    return re.sub(r"\s*[\d./]+.*$", "", name)


async def new_device(store: Store, redis: aioredis.Redis, settings: Settings, account_id: int, os_name: str,
                     browser: str, now_ms: int) -> bool:
    """Before a login is logged: a login from an OS and browser (families, not versions) this
    account never used is told to it."""
    seen = await store.fetchall("SELECT DISTINCT os, browser FROM account_sessions WHERE account_id = ?", (account_id,))
    if (_family(os_name), _family(browser)) in {(_family(r["os"]), _family(r["browser"])) for r in seen}:
        return False
    account = await store.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
    if account is None:
        return False
    await notices.send_verified(redis, account, settings, kind="security_login",
                                context={"device": f"{browser} on {os_name}", "at": _at(now_ms)},
                                dedupe=f"acct{account_id}:login:{now_ms}", subject_=security_subject(account_id))
    return True


async def password_changed(store: Store, redis: aioredis.Redis, settings: Settings, account_id: int,
                           now_ms: int) -> None:
    account = await store.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
    if account is not None:
        await notices.send_verified(redis, account, settings, kind="security_password", context={"at": _at(now_ms)},
                                    dedupe=f"acct{account_id}:password:{now_ms}",
                                    subject_=security_subject(account_id))


def erasure_messages(account: Json, settings: Settings, now_ms: int) -> list[tuple[str, str, str, str]]:
    """The erasure notice for each verified contact of ``account`` (read before it is erased):
    ``(channel URL, title, body, to)``. See :func:`send_erasure`."""
    title, body = render.render("security_erasure", account["lang"] or settings["notify.default_lang"],
                                {"at": _at(now_ms)})
    out = []
    for contact in ("email", "mobile"):
        channel = notices.contact_channel(contact, settings)
        if account[contact] and account[f"{contact}_verified"] and channel is not None:
            out.append((channels.fill(settings[f"notify.{channel}"], account[contact]), title, body, account[contact]))
    return out


def send_erasure(messages: list[tuple[str, str, str, str]]) -> None:
    """Send the erasure notice once, straight to the provider, after the answer has gone out.
    Unlike every other notice it does not pass through the ledger: that would put the erased
    account's address back into Redis (and its append-only file) until a worker sent it. One
    attempt, no retry; the log names the outcome, never the address."""
    for url, title, body, to in messages:
        answer, _ = channels.send(url, title, body, to)
        log.info("erasure notice: %s", answer)
