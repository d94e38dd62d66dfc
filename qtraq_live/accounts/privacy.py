"""The rights of an account holder, and retention: export, erasure, purge.

Export gathers every personal field held about the account and its patients. Erasure removes
them everywhere they can be: the SQLite rows (``secure_delete`` overwrites them in the file, and
a WAL checkpoint empties the log), the account's Redis sessions, its pending notices and the
notice delivery log, then asks Redis to rewrite its append-only file so the old values do not
survive there. Appointment rows stay without account or patient (de-identified statistics).
Appointment tickets never carry a name in the live state, so the clinic event streams hold
nothing to erase; their live tickets are cancelled.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ..config import Settings
from ..engine import live_erasure
from ..engine import redis_keys as keys
from ..queue_engine import ACTIVE, QueueEngine, iso
from ..record.store import Store
from . import appointments, consent, consent_records, contact_tickets, documents, nominee, notices, records
from .document_files import folder_of

log = logging.getLogger(__name__)

Json = dict[str, Any]
DAY_MS = 86_400_000
# What an account's erasure removes, by category (the security log names these, never values).
CATEGORIES = ["identity", "contact", "health_profile", "appointments", "walk_in_tickets", "consent", "sessions",
              "nominee"]
CODE_KEEP_MS = 2 * 3600 * 1000  # long enough for the hourly resend limit


async def export_account(store: Store, engine: QueueEngine, account_id: int, now_ms: int, today: date) -> Json:
    """Every piece of personal data held about the account and its patients."""
    row = await records.get_account_row(store, account_id)
    account = records.account_view(row, await consent.current(store, account_id))
    account["password"] = "set (stored only as an argon2 hash, which is not exported)"
    patients = [{**records.patient_view(p, today), "age_recorded_on": p["age_recorded_on"]}
                for p in await records.list_patients(store, account_id)]
    appts = []
    for a in await appointments.list_for(store, account_id):
        item = appointments.view(a)
        if a["ticket_id"] is not None:
            t = await store.fetchone("SELECT label, status, created_at, called_at, done_at FROM tickets WHERE id = ?",
                                     (a["ticket_id"],))
            live = await engine.ticket(a["ticket_id"])
            src = live or ({k: (iso(v) if k.endswith("_at") else v) for k, v in t.items()} if t else None)
            if src:
                item["ticket"] = {k: src[k] for k in ("label", "status", "created_at", "called_at", "done_at")}
        appts.append(item)
    codes = await store.fetchall("SELECT channel, sent_at, expires_at, tries FROM account_codes WHERE account_id = ?",
                                 (account_id,))
    walk_ins = await contact_tickets.ticket_ids(store, row)
    sent = await notices.delivered(store, account_id, [a["ticket_id"] for a in appts if a.get("ticket_id")] + walk_ins)
    return {
        "exported_at": iso(now_ms),
        "account": account,
        "consent": {"current": account["consent"], "history": await consent.history(store, account_id)},
        "sessions": await records.list_sessions(store, account_id),
        "patients": patients,
        "appointments": appts,
        "walk_in_tickets": await contact_tickets.export(store, engine, walk_ins),
        "consent_records": await consent_records.of_account(store, account_id),
        "nominee": await nominee.get(store, account_id),
        "guardian_verifications": await guardian_of(store, account_id),
        "verification_codes": [{"channel": c["channel"], "sent_at": iso(c["sent_at"]),
                                "expires_at": iso(c["expires_at"]), "tries": c["tries"]} for c in codes],
        "notices": sent,
    }


async def guardian_of(store: Store, account_id: int) -> list[Json]:
    rows = await store.fetchall("SELECT g.patient_id, g.method, g.reference, g.verified_contact, g.at"
                                " FROM guardian_verifications g JOIN patients p ON p.id = g.patient_id"
                                " WHERE p.account_id = ? ORDER BY g.patient_id", (account_id,))
    return [{**r, "at": iso(r["at"])} for r in rows]


async def erase_account(store: Store, redis: aioredis.Redis, engine: QueueEngine, account_id: int) -> None:
    """Delete the account, its patients and their contact details everywhere."""
    row = await records.get_account_row(store, account_id)
    walk_ins = await contact_tickets.ticket_ids(store, row)  # issued to its verified contacts
    tickets = [a["ticket_id"] for a in await appointments.list_for(store, account_id) if a["ticket_id"]]
    for ticket_id in tickets:
        live = await engine.ticket(ticket_id)
        if live is not None and live["status"] in ACTIVE:
            await engine.cancel(ticket_id, actor="patient")  # their own act: no "cancelled" notice
    await contact_tickets.erase_live(store, redis, engine, walk_ins)
    tickets += walk_ins
    await notices.forget(redis, store, account_id, tickets)
    await consent_records.forget_tickets(store, walk_ins)
    async with store.transaction() as db:
        await db.execute("UPDATE appointments SET status = 'cancelled' WHERE account_id = ? AND status = 'booked'",
                         (account_id,))
        await db.execute("UPDATE appointments SET account_id = NULL, patient_id = NULL WHERE account_id = ?",
                         (account_id,))
        if tickets:
            marks = ",".join("?" * len(tickets))
            await db.execute(f"UPDATE tickets SET name = NULL WHERE id IN ({marks})", tickets)
            await db.execute(f"DELETE FROM ticket_contacts WHERE ticket_id IN ({marks})", tickets)
        await db.execute("DELETE FROM accounts WHERE id = ?", (account_id,))  # cascades to patients, codes…
    await _end_sessions(redis, account_id)
    await compact(store, redis)
    log.info("account %d erased", account_id)


async def _end_sessions(redis: aioredis.Redis, account_id: int) -> None:
    """Sessions are keyed by a hash of their id only, so find the account's by scanning."""
    async for key in redis.scan_iter(match=keys.SESSIONS_PATTERN, count=500):
        found = await redis.hmget(key, "kind", "uid")
        if found == ["account", str(account_id)]:
            await redis.delete(key)


async def compact(store: Store, redis: aioredis.Redis) -> None:
    """Make deletions final on disk: empty the SQLite WAL into the (securely overwritten)
    file, vacuum it, and rewrite Redis's append-only file without the old values."""
    await store.fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
    await store.fetchall("VACUUM")  # rebuilds the file: no free page keeps an old row
    await store.fetchall("PRAGMA wal_checkpoint(TRUNCATE)")  # VACUUM wrote through the WAL
    try:
        await redis.bgrewriteaof()
    except ResponseError as exc:  # one already running, or AOF not in use
        log.info("append-only file not rewritten: %s", exc)


async def _forget_in_redis(store: Store, redis: aioredis.Redis, named: list[int], cutoff_ms: int) -> int:
    """Names of old tickets leave the live hashes, and each clinic's event stream (whose
    ticket states carry names) is cut at the cutoff: resuming from before it gets a snapshot."""
    await live_erasure.blank_names(redis, named)
    trimmed = 0
    for row in await store.fetchall("SELECT clinic, max(version) AS v FROM events WHERE at < ? GROUP BY clinic",
                                    (cutoff_ms,)):
        trimmed += await redis.xtrim(keys.events(row["clinic"]), minid=f"{row['v'] + 1}-0", approximate=False)
    return trimmed


async def purge(store: Store, redis: aioredis.Redis, settings: Settings, now_ms: int) -> Json:
    """Apply the retention policy: walk-in contact details and names (and the contacts of
    imported appointments) older than ``privacy.walkin_contact_days``, account session logs older
    than ``privacy.session_log_days``, spent verification codes. Returns counts only."""
    walkin_cutoff = now_ms - settings["privacy.walkin_contact_days"] * DAY_MS
    named = [r["id"] for r in await store.fetchall(
        "SELECT id FROM tickets WHERE name IS NOT NULL AND created_at < ?", (walkin_cutoff,))]
    async with store.transaction() as db:
        contacts = await db.execute("DELETE FROM ticket_contacts WHERE created_at < ?", (walkin_cutoff,))
        names = await db.execute("UPDATE tickets SET name = NULL WHERE name IS NOT NULL AND created_at < ?",
                                 (walkin_cutoff,))
        imported = await db.execute("DELETE FROM appointment_contacts WHERE appointment_id IN"
                                    " (SELECT id FROM appointments WHERE at_ms < ?)", (walkin_cutoff,))
        sessions = await db.execute("DELETE FROM account_sessions WHERE created_at < ?",
                                    (now_ms - settings["privacy.session_log_days"] * DAY_MS,))
        spent = await db.execute("DELETE FROM account_codes WHERE sent_at < ? AND expires_at < ?",
                                 (now_ms - CODE_KEEP_MS, now_ms))
        security = await db.execute("DELETE FROM security_log WHERE at < ?",
                                    (now_ms - settings["privacy.security_log_days"] * DAY_MS,))
        await db.execute("DELETE FROM consent_records WHERE ticket_id IS NOT NULL AND at < ?", (walkin_cutoff,))
    removed = {"walkin_contacts": contacts.rowcount, "walkin_names": names.rowcount,
               "imported_contacts": imported.rowcount,
               "stream_events": await _forget_in_redis(store, redis, named, walkin_cutoff),
               "account_sessions": sessions.rowcount, "verification_codes": spent.rowcount,
               "security_log": security.rowcount,
               "document_orphans": await documents.sweep_orphans(store, folder_of(settings))}
    if any(removed.values()):
        await compact(store, redis)
    log.info("retention purge: %s", removed)
    return removed
