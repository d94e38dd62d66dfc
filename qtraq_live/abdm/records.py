"""Shared ABHA profiles, their consent records and the registrations made from them (SQLite,
``schema/abdm.sql``): reception's list, one-click registration, export, erasure, retention."""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import redis.asyncio as aioredis

from ..engine import live_erasure
from ..errors import Conflict, NotFound
from ..record.store import Store
from .protocol import Share

log = logging.getLogger(__name__)

Json = dict[str, Any]
DAY_MS = 86_400_000
PURPOSE = "registration and a queue token for this visit (ABDM Scan & Share)"
PURPOSE_NOTIFY = PURPOSE + "; the ticket's watch link by SMS/WhatsApp to the shared number"
# The profile fields a share hands over: what the consent record says was shared.
SHARED_FIELDS = ("abhaAddress", "abhaNumber", "name", "gender", "dayOfBirth", "monthOfBirth", "yearOfBirth",
                 "address", "phoneNumber")
PERSON = ("abha_address", "abha_number", "name", "gender", "year_of_birth", "month_of_birth", "day_of_birth",
          "phone", "address_line", "district", "state", "pincode")


async def save(db: Store, share: Share, *, request_id: str, clinic: str, queue: str, ticket_id: int, label: str,
               notify: bool, now_ms: int, keep_days: int) -> int:
    """The profile and its consent record, together (call inside a transaction)."""
    values = {k: getattr(share, k) for k in PERSON}
    written = await db.execute(
        "INSERT INTO abdm_profiles (request_id, clinic, queue, ticket_id, label, hip_id, context, hpr_id, "
        + ", ".join(PERSON) + ", created_at) VALUES (" + ", ".join("?" * (8 + len(PERSON))) + ", ?)",
        (request_id, clinic, queue, ticket_id, label, share.hip_id, share.context, share.hpr_id,
         *values.values(), now_ms))
    profile_id = int(written.lastrowid or 0)
    await db.execute(
        "INSERT INTO abdm_consents (profile_id, abha_address, purpose, fields, notify, given_at, retain_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (profile_id, share.abha_address, PURPOSE_NOTIFY if notify else PURPOSE, json.dumps(SHARED_FIELDS),
         int(notify), now_ms, now_ms + keep_days * DAY_MS))
    return profile_id


def _age(row: Json, today: date) -> int:
    month, day = row["month_of_birth"] or 1, row["day_of_birth"] or 1
    return int(today.year - row["year_of_birth"] - ((today.month, today.day) < (month, day)))


def view(row: Json, today: date) -> Json:
    """A profile as reception sees it (no raw birth date: the age is enough at the desk)."""
    return {"id": row["id"], "ticket_id": row["ticket_id"], "label": row["label"], "queue": row["queue"],
            "name": row["name"], "gender": row["gender"], "age": _age(row, today),
            "abha_address": row["abha_address"], "abha_number": row["abha_number"],
            "counter": row["context"], "status": row["status"], "patient_id": row["patient_id"],
            "created_at": row["created_at"]}


async def waiting(store: Store, clinic: str, today: date, since_ms: int, limit: int = 100) -> list[Json]:
    """The clinic's shared profiles of today (since ``since_ms``, the clinic's midnight) not yet
    registered, newest first: yesterday's visits are over, whatever the desk did about them."""
    rows = await store.fetchall("SELECT * FROM abdm_profiles WHERE clinic = ? AND status = 'waiting'"
                                " AND created_at >= ? ORDER BY created_at DESC, id DESC LIMIT ?",
                                (clinic, since_ms, limit))
    return [view(r, today) for r in rows]


async def get(store: Store, profile_id: int) -> Json:
    row = await store.fetchone("SELECT * FROM abdm_profiles WHERE id = ?", (profile_id,))
    if row is None:
        raise NotFound("unknown shared profile")
    return row


async def register(store: Store, profile_id: int, actor: str, now_ms: int) -> Json:
    """Make (or refresh) the clinic's patient record from a shared profile and link the two.
    A returning ABHA holder's record is updated with what they shared this time."""
    async with store.transaction() as db:
        row = await get(db, profile_id)
        if row["status"] != "waiting":
            raise Conflict("this shared profile is registered already", code="registered")
        person = [row[k] for k in PERSON]
        await db.execute(
            "INSERT INTO abdm_patients (clinic, " + ", ".join(PERSON) + ", created_at, updated_at)"
            " VALUES (?, " + ", ".join("?" * len(PERSON)) + ", ?, ?) ON CONFLICT (clinic, abha_address) DO UPDATE SET "
            + ", ".join(f"{k} = excluded.{k}" for k in PERSON if k != "abha_address")
            + ", visits = visits + 1, updated_at = excluded.updated_at",
            (row["clinic"], *person, now_ms, now_ms))
        patient = await db.fetchone("SELECT * FROM abdm_patients WHERE clinic = ? AND abha_address = ?",
                                    (row["clinic"], row["abha_address"]))
        assert patient is not None
        await db.execute("UPDATE abdm_profiles SET status = 'registered', patient_id = ?, registered_by = ?,"
                         " registered_at = ? WHERE id = ?", (patient["id"], actor, now_ms, profile_id))
    log.info("abdm: shared profile %d registered as patient %d", profile_id, patient["id"])
    return patient


async def export(store: Store, abha_address: str) -> Json:
    """Everything held about one ABHA holder: shared profiles, consent records, registrations."""
    profiles = await store.fetchall("SELECT * FROM abdm_profiles WHERE abha_address = ? ORDER BY id",
                                    (abha_address,))
    consents = await store.fetchall("SELECT * FROM abdm_consents WHERE abha_address = ? ORDER BY id",
                                    (abha_address,))
    for c in consents:
        c["fields"] = json.loads(c["fields"])
        c["notify"] = bool(c["notify"])
    patients = await store.fetchall("SELECT * FROM abdm_patients WHERE abha_address = ? ORDER BY id",
                                    (abha_address,))
    if not (profiles or patients):
        raise NotFound("nothing is held for this ABHA address")
    return {"abha_address": abha_address, "shared_profiles": profiles, "consents": consents,
            "patient_records": patients}


async def _forget(store: Store, redis: aioredis.Redis, where: str, params: tuple[Any, ...]) -> Json:
    """Delete the profiles (and their consents) matching ``where``, with their tickets' names
    and contact rows, in SQLite and in the live hashes."""
    async with store.transaction() as db:
        tickets = [r["ticket_id"] for r in await db.fetchall(f"SELECT ticket_id FROM abdm_profiles WHERE {where}",
                                                             params)]
        marks = ", ".join("?" * len(tickets))
        names = contacts = 0
        if tickets:
            names = (await db.execute(f"UPDATE tickets SET name = NULL WHERE id IN ({marks}) AND name IS NOT NULL",
                                      tuple(tickets))).rowcount
            contacts = (await db.execute(f"DELETE FROM ticket_contacts WHERE ticket_id IN ({marks})",
                                         tuple(tickets))).rowcount
        consents = (await db.execute(f"DELETE FROM abdm_consents WHERE profile_id IN"
                                     f" (SELECT id FROM abdm_profiles WHERE {where})", params)).rowcount
        profiles = (await db.execute(f"DELETE FROM abdm_profiles WHERE {where}", params)).rowcount
    await live_erasure.blank_names(redis, list(tickets))
    return {"shared_profiles": profiles, "consents": consents, "ticket_names": names, "ticket_contacts": contacts}


async def erase(store: Store, redis: aioredis.Redis, abha_address: str) -> Json:
    """Erase one ABHA holder: profiles, consents, registrations, and their tickets' names.
    Counts only are returned and logged."""
    removed = await _forget(store, redis, "abha_address = ?", (abha_address,))
    removed["patient_records"] = (await store.execute("DELETE FROM abdm_patients WHERE abha_address = ?",
                                                      (abha_address,))).rowcount
    if not any(removed.values()):
        raise NotFound("nothing is held for this ABHA address")
    log.info("abdm: erasure: %s", removed)
    return removed


async def purge(store: Store, redis: aioredis.Redis, keep_days: int, now_ms: int) -> Json:
    """Retention: profiles and consents older than ``keep_days``, and registrations not seen
    again within it."""
    cutoff = now_ms - keep_days * DAY_MS
    removed = await _forget(store, redis, "created_at < ?", (cutoff,))
    removed["patient_records"] = (await store.execute("DELETE FROM abdm_patients WHERE updated_at < ?",
                                                      (cutoff,))).rowcount
    if any(removed.values()):
        log.info("abdm: retention purge: %s", removed)
    return removed
