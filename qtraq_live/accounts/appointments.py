"""Appointments: per-queue slot settings, booking within capacity, check-in, no-shows.

A queue with a row in ``queue_slots`` takes appointments by time slot (``slot_minutes`` long,
``capacity`` people each, from ``opens`` to ``closes`` in clinic time); without one it takes
them by date only, without a limit. The capacity check and the insert are one SQL statement
inside a ``BEGIN IMMEDIATE`` transaction, so concurrent bookings never overfill a slot, from one
process or many.

Check-in issues the ticket. ``order_policy`` says where an appointment holder joins the walk-ins:
``slot`` (default) places the ticket as if it had arrived at its slot time (early arrivals wait
behind walk-ins who came before that time, late ones go ahead of those who came after it);
``arrival`` places it at the back, like a walk-in arriving now. Appointment tickets carry no
name in the live state: reception finds the patient through the appointment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..engine import live_reads
from ..errors import Conflict, Invalid, NotFound
from ..queue_engine import QueueEngine, TicketSource, iso
from ..record.store import Store
from ..validation import SLUG, Field, Schema
from . import payments, records

log = logging.getLogger(__name__)

Json = dict[str, Any]
HHMM = r"([01]\d|2[0-3]):[0-5]\d"
BOOKING_DAYS = 90
DAY_ONLY_AT = time(9, 0)  # reminders for date-only appointments count from 09:00 clinic time
LIVE = ("booked", "checked_in")

SLOTS = Schema({
    "slot_minutes": Field("integer", required=True, minimum=5, maximum=240),
    "capacity": Field("integer", required=True, minimum=1, maximum=500),
    "opens": Field("string", required=True, pattern=HHMM, description="HH:MM clinic time"),
    "closes": Field("string", required=True, pattern=HHMM, description="HH:MM clinic time"),
    "order_policy": Field("string", enum=("slot", "arrival"), default="slot"),
    "grace_minutes": Field("integer", minimum=0, maximum=240, default=30),
})
BOOK = Schema({
    "patient": Field("integer", required=True, minimum=1),
    "queue": Field("string", required=True, pattern=SLUG),
    "date": Field("string", required=True, pattern=records.DATE, description="YYYY-MM-DD clinic time"),
    "slot": Field("string", nullable=True, pattern=HHMM, description="HH:MM clinic time"),
    "payment_method": payments.METHOD_FIELD,
})
# An appointment row with how it is paid (appointment_payments, issue #22).
_SELECT = ("SELECT a.*, p.method AS payment_method, p.paid_at AS paid_at FROM appointments a"
           " LEFT JOIN appointment_payments p ON p.appointment_id = a.id")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def slot_times(cfg: Json) -> list[str]:
    """Every slot start from opening time while a whole slot fits before closing."""
    step, start, end = cfg["slot_minutes"], _minutes(cfg["opens"]), _minutes(cfg["closes"])
    return [f"{m // 60:02d}:{m % 60:02d}" for m in range(start, end - step + 1, step)]


def local_ms(day: date, at: time, tz: str) -> int:
    return int(datetime.combine(day, at, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def clinic_today(tz: str, now_ms: int) -> date:
    return datetime.fromtimestamp(now_ms / 1000, tz=ZoneInfo(tz)).date()


async def queue_place(engine: QueueEngine, queue_id: str) -> tuple[str, str]:
    """``(clinic id, clinic timezone)`` of a queue; 404 when unknown."""
    queue = await engine.get_queue(queue_id)
    if queue is None:
        raise NotFound(f"unknown queue {queue_id}")
    tz = await live_reads.clinic_field(engine.redis, queue["clinic"], "timezone")
    return str(queue["clinic"]), str(tz or "UTC")


# -- slot settings ----------------------------------------------------------------------

async def get_slots(store: Store, queue_id: str) -> Json | None:
    row = await store.fetchone("SELECT slot_minutes, capacity, opens, closes, order_policy, grace_minutes"
                               " FROM queue_slots WHERE queue = ?", (queue_id,))
    return row


async def set_slots(store: Store, engine: QueueEngine, queue_id: str, cfg: Json, now_ms: int) -> Json:
    await queue_place(engine, queue_id)
    if _minutes(cfg["closes"]) - _minutes(cfg["opens"]) < cfg["slot_minutes"]:
        raise Invalid("closes", "must leave room for at least one slot after opens")
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO queue_slots (queue, slot_minutes, capacity, opens, closes, order_policy, grace_minutes,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (queue) DO UPDATE SET"
            " slot_minutes = excluded.slot_minutes, capacity = excluded.capacity, opens = excluded.opens,"
            " closes = excluded.closes, order_policy = excluded.order_policy,"
            " grace_minutes = excluded.grace_minutes, updated_at = excluded.updated_at",
            (queue_id, cfg["slot_minutes"], cfg["capacity"], cfg["opens"], cfg["closes"], cfg["order_policy"],
             cfg["grace_minutes"], now_ms))
    log.info("queue %s slot settings changed", queue_id)
    return {"queue": queue_id, **cfg}


async def clear_slots(store: Store, queue_id: str) -> None:
    """Back to date-only appointments (existing bookings keep their slots)."""
    await store.execute("DELETE FROM queue_slots WHERE queue = ?", (queue_id,))


async def availability(store: Store, engine: QueueEngine, queue_id: str, day_text: str, now_ms: int) -> Json:
    """The slots of one day with what is left in each (``slots: null``: date only)."""
    _, tz = await queue_place(engine, queue_id)
    day = _check_day(day_text, tz, now_ms)
    cfg = await get_slots(store, queue_id)
    if cfg is None:
        return {"queue": queue_id, "date": day_text, "slots": None}
    rows = await store.fetchall("SELECT slot, count(*) AS n FROM appointments WHERE queue = ? AND date = ?"
                                " AND status IN ('booked', 'checked_in') GROUP BY slot", (queue_id, day_text))
    taken = {r["slot"]: r["n"] for r in rows}
    slots = [{"slot": s, "capacity": cfg["capacity"], "free": max(cfg["capacity"] - taken.get(s, 0), 0),
              "past": local_ms(day, time.fromisoformat(s), tz) + cfg["slot_minutes"] * 60_000 <= now_ms}
             for s in slot_times(cfg)]
    return {"queue": queue_id, "date": day_text, "order_policy": cfg["order_policy"], "slots": slots}


def _check_day(day_text: str, tz: str, now_ms: int) -> date:
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise Invalid("date", "must be a real date YYYY-MM-DD") from None
    today = clinic_today(tz, now_ms)
    if not today <= day <= today + timedelta(days=BOOKING_DAYS):
        raise Invalid("date", f"must be from today to {BOOKING_DAYS} days ahead (clinic time)")
    return day


# -- booking ---------------------------------------------------------------------------

def view(row: Json) -> Json:
    return {"id": row["id"], "patient": row["patient_id"], "queue": row["queue"], "clinic": row["clinic"],
            "date": row["date"], "slot": row["slot"], "status": row["status"], "ticket_id": row["ticket_id"],
            "created_at": iso(row["created_at"]), "payment_method": row.get("payment_method"),
            "paid": row.get("paid_at") is not None}


async def plan(store: Store, engine: QueueEngine, queue_id: str, day_text: str, slot: str | None,
               now_ms: int) -> Json:
    """Check a queue, date and slot for a booking: ``{clinic, queue, date, slot, at_ms, no_show_at}``."""
    try:
        clinic, tz = await queue_place(engine, queue_id)
    except NotFound:
        raise Invalid("queue", "unknown queue") from None
    day = _check_day(day_text, tz, now_ms)
    cfg = await get_slots(store, queue_id)
    if cfg is None:
        if slot is not None:
            raise Invalid("slot", "this queue takes appointments by date only")
        at_ms = local_ms(day, DAY_ONLY_AT, tz)
        no_show_at = local_ms(day + timedelta(days=1), time(0, 0), tz)
    else:
        if slot is None:
            raise Invalid("slot", "is required: this queue takes appointments by time slot", code="missing_field")
        if slot not in slot_times(cfg):
            raise Invalid("slot", "is not one of this queue's slots")
        at_ms = local_ms(day, time.fromisoformat(slot), tz)
        if at_ms + cfg["slot_minutes"] * 60_000 <= now_ms:
            raise Invalid("slot", "has already passed")
        no_show_at = at_ms + cfg["grace_minutes"] * 60_000
    return {"clinic": clinic, "queue": queue_id, "date": day_text, "slot": slot, "at_ms": at_ms,
            "no_show_at": no_show_at}


async def insert(db: Store, p: Json, account_id: int | None, patient_id: int | None, now_ms: int) -> int:
    """Inside a transaction: insert a planned booking if its slot has room (409 ``slot_full``).
    The count and the insert are one statement, so no other booking can slip between them."""
    written = await db.execute(
        "INSERT INTO appointments (account_id, patient_id, clinic, queue, date, slot, at_ms, no_show_at,"
        " status, created_at, updated_at) SELECT ?,?,?,?,?,?,?,?,'booked',?,? WHERE ? IS NULL OR"
        " (SELECT count(*) FROM appointments WHERE queue = ? AND date = ? AND slot = ?"
        "  AND status IN ('booked', 'checked_in')) < (SELECT capacity FROM queue_slots WHERE queue = ?)",
        (account_id, patient_id, p["clinic"], p["queue"], p["date"], p["slot"], p["at_ms"], p["no_show_at"],
         now_ms, now_ms, p["slot"], p["queue"], p["date"], p["slot"], p["queue"]))
    if written.rowcount == 0:
        raise Conflict("slot: this slot is full", code="slot_full")
    return int(written.lastrowid or 0)


async def book(store: Store, engine: QueueEngine, account_id: int, body: Json, now_ms: int) -> Json:
    """Book for one of the account's patients; 409 ``slot_full`` when the slot has no room."""
    p = await plan(store, engine, body["queue"], body["date"], body.get("slot"), now_ms)
    patient = await store.fetchone("SELECT id FROM patients WHERE id = ? AND account_id = ?",
                                   (body["patient"], account_id))
    if patient is None:
        raise Invalid("patient", "is not one of this account's patients")
    async with store.transaction() as db:
        if await db.fetchone("SELECT 1 FROM appointments WHERE patient_id = ? AND queue = ? AND date = ?"
                             " AND status IN ('booked', 'checked_in')", (body["patient"], body["queue"], body["date"])):
            raise Conflict("this patient already has an appointment at this queue on that date", code="already_booked")
        appointment_id = await insert(db, p, account_id, body["patient"], now_ms)
        await payments.record_method(db, appointment_id, body.get("payment_method"))
    log.info("appointment %d booked at queue %s", appointment_id, body["queue"])
    return view(await get(store, appointment_id))


async def get(store: Store, appointment_id: int, account_id: int | None = None) -> Json:
    """One appointment (of that account, when given); 404 otherwise."""
    row = await store.fetchone(f"{_SELECT} WHERE a.id = ?", (appointment_id,))
    if row is None or (account_id is not None and row["account_id"] != account_id):
        raise NotFound("unknown appointment")
    return row


async def holder_name(store: Store, row: Json) -> str | None:
    """Who the appointment is for: the linked patient, or the name it was imported with."""
    if row["patient_id"] is not None:
        name = await store.fetchval("SELECT name FROM patients WHERE id = ?", (row["patient_id"],))
    else:
        name = await store.fetchval("SELECT name FROM appointment_contacts WHERE appointment_id = ?", (row["id"],))
    return None if name is None else str(name)


async def list_for(store: Store, account_id: int) -> list[Json]:
    return await store.fetchall(f"{_SELECT} WHERE a.account_id = ? ORDER BY a.date DESC, a.slot, a.id",
                                (account_id,))


async def cancel(store: Store, account_id: int, appointment_id: int, now_ms: int) -> Json:
    await get(store, appointment_id, account_id)
    written = await store.execute("UPDATE appointments SET status = 'cancelled', updated_at = ?"
                                  " WHERE id = ? AND status = 'booked'", (now_ms, appointment_id))
    if written.rowcount == 0:
        raise Conflict("only a booked appointment can be cancelled", code="not_booked")
    return view(await get(store, appointment_id))


# -- check-in ---------------------------------------------------------------------------

async def check_in(store: Store, engine: QueueEngine, appointment_id: int, *, account_id: int | None,
                   now_ms: int, actor: str, lang: str | None = None) -> Json:
    """Issue the appointment's ticket (once). Returns the ticket with its token."""
    appt = await get(store, appointment_id, account_id)
    _, tz = await queue_place(engine, appt["queue"])
    if appt["status"] != "booked":
        raise Conflict(f"the appointment is {appt['status']}", code="not_booked")
    if appt["date"] != clinic_today(tz, now_ms).isoformat():
        raise Conflict("check-in is possible on the appointment's day only", code="wrong_day")
    cfg = await get_slots(store, appt["queue"])
    by_slot = appt["slot"] is not None and (cfg is None or cfg["order_policy"] == "slot")
    ticket_id = await engine.allocate_ticket_id()
    claimed = await store.execute("UPDATE appointments SET status = 'checked_in', ticket_id = ?, updated_at = ?"
                                  " WHERE id = ? AND status = 'booked'", (ticket_id, now_ms, appointment_id))
    if claimed.rowcount == 0:
        raise Conflict("the appointment was checked in already", code="not_booked")
    try:
        ticket = await engine.issue(appt["queue"], notify=True, lang=lang, ticket_id=ticket_id,
                                    appointment_id=appointment_id, arrival_ms=appt["at_ms"] if by_slot else None,
                                    source=TicketSource.APPOINTMENT if appt["account_id"] else TicketSource.IMPORT,
                                    actor=actor)
    except BaseException:
        await store.execute("UPDATE appointments SET status = 'booked', ticket_id = NULL WHERE id = ?",
                            (appointment_id,))
        raise
    log.info("appointment %d checked in as ticket %d", appointment_id, ticket_id)
    return ticket


# -- automatic duties -------------------------------------------------------------------

async def mark_no_shows(store: Store, now_ms: int) -> int:
    """Booked appointments whose grace period has passed become ``no_show``."""
    written = await store.execute("UPDATE appointments SET status = 'no_show', updated_at = ?"
                                  " WHERE status = 'booked' AND no_show_at <= ?", (now_ms, now_ms))
    if written.rowcount:
        log.info("%d appointments marked no-show", written.rowcount)
    return written.rowcount


REMINDERS = (("hour", 3600_000), ("day", 24 * 3600_000))  # nearest first


async def take_due_reminders(store: Store, now_ms: int) -> list[tuple[str, Json]]:
    """``(kind, appointment)`` pairs due now, each marked sent so it is taken once. A reminder
    whose lead time had already begun at booking is not sent (no "tomorrow" for a same-day
    booking), and when the hour reminder is due the day one is no longer sent."""
    due: list[tuple[str, Json]] = []
    async with store.transaction() as db:
        for kind, lead in REMINDERS:
            rows = await db.fetchall(
                "SELECT * FROM appointments WHERE status = 'booked' AND at_ms > ? AND at_ms - ? <= ?"
                " AND created_at < at_ms - ? AND instr(reminded, ?) = 0",
                (now_ms, lead, now_ms, lead, kind))
            for row in rows:
                await db.execute("UPDATE appointments SET reminded = 'day,hour' WHERE id = ?" if kind == "hour"
                                 else "UPDATE appointments SET reminded = 'day' WHERE id = ?", (row["id"],))
                due.append((kind, row))
    return due


def checkin_code(secret: str, clinic_id: str, day: date) -> str:
    """The clinic's on-site check-in code for one day (shown as a QR at reception): proves a
    patient checking in from their phone is at the clinic, and stops working at midnight."""
    digest = hmac.new(secret.encode(), f"checkin:{clinic_id}:{day.isoformat()}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
