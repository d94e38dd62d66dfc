"""``qtraq-live import appointments FILE.csv [--dry-run]``: appointments from another system.

Header ``name,mobile,email,queue,date,slot``. Every row is checked as a booking would be
(queue, date, slot, capacity, counting the rows before it); each bad row is reported by its
line number and field. The import is all or nothing: one bad row and nothing is written.
Imported appointments belong to no account; their name and contacts live in
``appointment_contacts`` (reminders and queue notices use them; retention deletes them).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from typing import Any

from .. import phones
from ..errors import Conflict, Invalid
from ..queue_engine import QueueEngine
from ..record.store import Store
from ..validation import EMAIL, EMAIL_MAX, NAME_MAX, SLUG, Field, Schema
from . import appointments, records

log = logging.getLogger(__name__)

HEADER = ("name", "mobile", "email", "queue", "date", "slot")
MAX_ROWS = 10_000
ROW = Schema({
    "name": Field("string", required=True, min_length=1, max_length=NAME_MAX, pattern=records.TEXT),
    "mobile": phones.FIELD,
    "email": Field("string", nullable=True, max_length=EMAIL_MAX, pattern=EMAIL),
    "queue": Field("string", required=True, pattern=SLUG),
    "date": Field("string", required=True, pattern=records.DATE),
    "slot": Field("string", nullable=True, pattern=appointments.HHMM),
})


@dataclass
class Report:
    rows: int = 0
    imported: int = 0
    errors: list[str] = field(default_factory=list)  # "line 3: mobile: has an invalid format"


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    """Empty cells are absent values; surrounding spaces are not data."""
    return {k: (v.strip() or None) if isinstance(v, str) else None for k, v in raw.items() if k in HEADER}


async def import_csv(store: Store, engine: QueueEngine, text: str, now_ms: int, *, dry_run: bool) -> Report:
    report = Report()
    reader = csv.DictReader(io.StringIO(text))
    if tuple(h.strip() for h in reader.fieldnames or ()) != HEADER:
        report.errors.append(f"line 1: header must be {','.join(HEADER)}")
        return report
    planned: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    taken: dict[tuple[str, str, str], int] = {}  # slot -> places left, counting earlier rows
    for raw in reader:
        line = reader.line_num
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.errors.append(f"line {line}: more than {MAX_ROWS} rows; split the file")
            break
        try:
            row = ROW.validate(_row(raw))
            if row["email"]:
                row["email"] = row["email"].lower()
            plan = await appointments.plan(store, engine, row["queue"], row["date"], row["slot"], now_ms)
            row["mobile"] = phones.optional_e164(row["mobile"], await engine.queue_region(plan["queue"]))
            if plan["slot"] is not None:
                where = (plan["queue"], plan["date"], plan["slot"])
                if where not in taken:
                    taken[where] = await _places_left(store, *where)
                if taken[where] <= 0:
                    raise Invalid("slot", "this slot is full")
                taken[where] -= 1
        except Invalid as exc:
            report.errors.append(f"line {line}: {exc.message}")
            continue
        planned.append((line, row, plan))
    if report.errors or dry_run:
        return report
    line = 0
    try:
        async with store.transaction() as db:
            for line, row, plan in planned:
                appointment_id = await appointments.insert(db, plan, None, None, now_ms)
                await db.execute("INSERT INTO appointment_contacts (appointment_id, name, mobile, email, created_at)"
                                 " VALUES (?,?,?,?,?)", (appointment_id, row["name"], row["mobile"], row["email"],
                                                         now_ms))
    except Conflict:  # a booking took the last place meanwhile: nothing was written
        report.errors.append(f"line {line}: slot: this slot is full")
        return report
    report.imported = len(planned)
    log.info("imported %d appointments", report.imported)
    return report


async def _places_left(store: Store, queue_id: str, day: str, slot: str) -> int:
    row = await store.fetchone(
        "SELECT (SELECT capacity FROM queue_slots WHERE queue = ?) - (SELECT count(*) FROM appointments"
        " WHERE queue = ? AND date = ? AND slot = ? AND status IN ('booked', 'checked_in')) AS n",
        (queue_id, queue_id, day, slot))
    return int(row["n"]) if row and row["n"] is not None else 0
