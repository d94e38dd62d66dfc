"""The accounts side of notices: who hears about an appointment ticket, and the account's own
messages (welcome, codes, booking, reminders), all through the notifier's interface.

Consent subjects: ``account:{id}`` carries the account's notification consent (queue notices,
bookings, reminders; mirrored into the notifier's opt-out set so a withdrawal drops what is
pending); ``account:{id}:service`` is for the welcome and the verification codes, which the
account asked for by registering and which go to a contact before it is verified. Queue
notices and reminders go only to verified contacts, and only with notification consent.
Imported appointments (no account) use the contacts they were imported with, subject
``appointment:{id}``.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from ..config import Settings
from ..engine import live_reads
from ..engine import redis_keys as keys
from ..queue_engine import QueueEngine, iso
from ..record.store import Store
from ..workers import ledger
from ..workers.notices import enqueue_account_notice, set_consent
from ..workers.recipients import Recipient
from . import consent, records

log = logging.getLogger(__name__)

Json = dict[str, Any]
PENDING = (ledger.QUEUED, ledger.RETRYING, ledger.FAILED)


def subject(account_id: int) -> str:
    return f"account:{account_id}"


def service_subject(account_id: int) -> str:
    return f"account:{account_id}:service"


def _prefix(account_id: int | None) -> str:
    """Every account notice's key starts ``a:acct{id}:`` (the notifier adds ``a:``), so erasure
    finds them in the delivery log."""
    return "" if account_id is None else f"acct{account_id}:"


def _channel_for(contact: str, settings: Settings) -> str | None:
    """email for an address; SMS (else WhatsApp) for a phone; None when nothing is configured."""
    if contact == "email":
        return "email" if settings["notify.email"] else None
    return "sms" if settings["notify.sms"] else "whatsapp" if settings["notify.whatsapp"] else None


async def recipients_for_ticket(store: Store, ticket_id: int) -> list[Recipient]:
    """The notifier's hook for tickets checked in from an appointment: the verified contacts
    of the account whose patient holds it, when that account consents to notifications; for
    an imported appointment (no account), the contacts it was imported with."""
    appt = await store.fetchone("SELECT id, account_id FROM appointments WHERE ticket_id = ?", (ticket_id,))
    if appt is None:
        return []
    return [Recipient("sms" if contact == "mobile" else "email", to, lang, subj)
            for contact, to, lang, subj in await _targets(store, appt)]


async def _targets(store: Store, appt: Json) -> list[tuple[str, str, str | None, str]]:
    """``(contact, address, lang, consent subject)`` for an appointment's notices."""
    if appt["account_id"] is None:
        row = await store.fetchone("SELECT mobile, email FROM appointment_contacts WHERE appointment_id = ?",
                                   (appt["id"],))
        return [(c, row[c], None, f"appointment:{appt['id']}") for c in ("email", "mobile") if row and row[c]]
    if not (await consent.current(store, appt["account_id"]))["notifications"]:
        return []
    account = await records.get_account_row(store, appt["account_id"])
    return [(c, account[c], account["lang"], subject(account["id"])) for c in ("email", "mobile")
            if account[c] and account[f"{c}_verified"]]


async def _send(redis: aioredis.Redis, settings: Settings, contact: str, to: str, lang: str | None, *,
                kind: str, context: Json, dedupe: str, subject_: str, clinic: str = "") -> None:
    channel = _channel_for(contact, settings)
    if channel is None:
        log.warning("no %s channel configured for a %s notice", contact, kind)
        return
    await enqueue_account_notice(
        redis, kind=kind, to=to, channel=channel, context=context, lang=lang or settings["notify.default_lang"],
        dedupe_key=f"{dedupe}:{contact}", subject=subject_, clinic=clinic)


async def send_welcome(redis: aioredis.Redis, store: Store, settings: Settings, account_id: int) -> None:
    """Welcome every contact given at registration (verified or not: they just registered),
    but not a contact it only claims (another account holds it)."""
    account = await store.fetchone("SELECT name, email, mobile, lang FROM accounts WHERE id = ?", (account_id,))
    if account is None:
        return
    for contact in ("email", "mobile"):
        if account[contact]:
            await _send(redis, settings, contact, account[contact], account["lang"], kind="welcome",
                        context={"name": account["name"]}, dedupe=f"{_prefix(account_id)}welcome",
                        subject_=service_subject(account_id))


async def send_code(redis: aioredis.Redis, store: Store, settings: Settings, account_id: int, contact: str,
                    code: str, sent_ms: int) -> None:
    account = await records.get_account_row(store, account_id)
    await _send(redis, settings, contact, account[contact], account["lang"], kind="verify_code",
                context={"code": code, "minutes": 10}, dedupe=f"{_prefix(account_id)}code:{sent_ms}",
                subject_=service_subject(account_id))


async def send_contact_in_use(redis: aioredis.Redis, store: Store, settings: Settings, owner_id: int,
                              contact: str, sent_ms: int) -> None:
    """Tell the verified owner of a contact that someone else tried to register or add it
    (the one asking is answered as if it were free, so nobody learns who is a patient here)."""
    owner = await records.get_account_row(store, owner_id)
    await _send(redis, settings, contact, owner[contact], owner["lang"], kind="contact_in_use",
                context={"contact": contact}, dedupe=f"{_prefix(owner_id)}inuse:{sent_ms}",
                subject_=service_subject(owner_id))


async def send_appointment(engine: QueueEngine, store: Store, settings: Settings, kind: str, appt: Json,
                           tag: str) -> None:
    """A booking, cancellation or reminder notice for an appointment (see :func:`_targets`);
    ``tag`` names which one, so each is sent once."""
    targets = await _targets(store, appt)
    if not targets:
        return
    queue = await engine.get_queue(appt["queue"])
    clinic_name = await live_reads.clinic_field(engine.redis, appt["clinic"], "name")
    context = {"date": appt["date"], "slot": appt["slot"], "queue": queue["name"] if queue else appt["queue"],
               "clinic": clinic_name or appt["clinic"]}
    dedupe = f"{_prefix(appt['account_id'])}appt{appt['id']}:{tag}"
    for contact, to, lang, subj in targets:
        await _send(engine.redis, settings, contact, to, lang, kind=kind, context=context, dedupe=dedupe,
                    subject_=subj, clinic=appt["clinic"])


async def consent_changed(redis: aioredis.Redis, account_id: int, notifications: bool) -> None:
    """Mirror the choice into the notifier: on withdrawal every pending notice is dropped
    before it is sent (each job checks right before sending)."""
    await set_consent(redis, subject(account_id), notifications)


async def delivered(store: Store, account_id: int, ticket_ids: list[int]) -> list[Json]:
    """The delivery log of the account's notices (for its export): what, how, when, outcome."""
    marks = ",".join("?" * len(ticket_ids))
    rows = await store.fetchall(
        "SELECT kind, channel, ticket_id, recipient_hint, status, created_at, sent_at FROM notices"
        f" WHERE key LIKE ? OR ticket_id IN ({marks}) ORDER BY id", (f"a:{_prefix(account_id)}%", *ticket_ids))
    return [{**r, "created_at": iso(r["created_at"]), "sent_at": iso(r["sent_at"])} for r in rows]


async def forget_ticket(redis: aioredis.Redis, store: Store, ticket_id: int) -> None:
    """A walk-in withdrew: drop the ticket's pending notices (their recipient and text leave
    Redis) and blank its recipient hints."""
    await set_consent(redis, f"ticket:{ticket_id}", False)
    async for key in redis.scan_iter(match=keys.notice(f"t{ticket_id}:*"), count=500, _type="HASH"):
        found_subject, state = await redis.hmget(key, "subject", "state")
        await redis.hset(key, "hint", "")
        if found_subject == f"ticket:{ticket_id}" and state in PENDING:
            ks, argv = ledger.transition_args(key.removeprefix(keys.notice("")), PENDING, ledger.DROPPED,
                                              reason="withdrawn")
            await redis.eval(ledger.TRANSITION_LUA, len(ks), *ks, *argv)
    await store.execute("UPDATE notices SET recipient_hint = NULL WHERE ticket_id = ?", (ticket_id,))


async def forget(redis: aioredis.Redis, store: Store, account_id: int, ticket_ids: list[int]) -> None:
    """Erasure: drop the account's pending notices now (which deletes their recipient and text
    from Redis) instead of waiting for their jobs, and blank the masked recipient hints of all
    its notices, in Redis and in the delivery log."""
    await set_consent(redis, subject(account_id), False)
    await set_consent(redis, service_subject(account_id), False)
    mine = {subject(account_id), service_subject(account_id), *(f"ticket:{t}" for t in ticket_ids)}
    dropped = 0
    async for key in redis.scan_iter(match=keys.notice("*"), count=500, _type="HASH"):
        found_subject, state = await redis.hmget(key, "subject", "state")
        if found_subject not in mine:
            continue
        await redis.hset(key, "hint", "")  # before the transition, which logs the hint
        if state in PENDING:
            ks, argv = ledger.transition_args(key.removeprefix(keys.notice("")), PENDING, ledger.DROPPED,
                                              reason="erased")
            await redis.eval(ledger.TRANSITION_LUA, len(ks), *ks, *argv)
            dropped += 1
    marks = ",".join("?" * len(ticket_ids))
    await store.execute(f"UPDATE notices SET recipient_hint = NULL WHERE key LIKE ? OR ticket_id IN ({marks})",
                        (f"a:{_prefix(account_id)}%", *ticket_ids))
    log.info("account %d: %d pending notices dropped for erasure", account_id, dropped)


def contact_channel(contact: str, settings: Settings, allowed: tuple[str, ...] | None = None) -> str | None:
    """The channel for an account contact (``email`` or ``mobile``) among ``allowed`` (all
    when None) that the config can send on; None when there is none."""
    options = ("email",) if contact == "email" else ("sms", "whatsapp")
    return next((ch for ch in options if (allowed is None or ch in allowed) and settings[f"notify.{ch}"]), None)


async def send_verified(redis: aioredis.Redis, account: Json, settings: Settings, *, kind: str, context: Json,
                        dedupe: str, subject_: str, allowed: tuple[str, ...] | None = None) -> int:
    """One notice to each verified contact of ``account`` (a row) on a channel in ``allowed``;
    ``dedupe`` makes each one exactly once (the ledger). Returns how many were asked for."""
    sent = 0
    for contact in ("email", "mobile"):
        channel = contact_channel(contact, settings, allowed)
        if not account[contact] or not account[f"{contact}_verified"] or channel is None:
            continue
        await enqueue_account_notice(redis, kind=kind, to=account[contact], channel=channel, context=context,
                                     lang=account["lang"] or settings["notify.default_lang"],
                                     dedupe_key=f"{dedupe}:{contact}", subject=subject_)
        sent += 1
    return sent
