"""How a visit is paid, never card data: an appointment's method, a clinic's UPI id and each
queue's fee, the UPI link and QR of the ticket page, and counts of methods for the stats.

The settings are kept in SQLite (``payment_settings``) and mirrored into one Redis hash per
clinic (``qt:pay:{clinic}``: ``upi_vpa``, ``fee:{queue}``) so any hub can draw the ticket page;
``mirror_all`` restores the hash from the record (at ``rebuild``).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import redis.asyncio as aioredis
import segno

from ..engine import redis_keys as keys
from ..errors import Conflict, NotFound
from ..record.store import Store
from ..validation import Field

log = logging.getLogger(__name__)

Json = dict[str, Any]

METHODS = ("cash", "upi", "card_at_clinic", "insurance", "other")
VPA = r"^$|^[A-Za-z0-9._-]{2,64}@[A-Za-z][A-Za-z0-9.-]{1,63}$"  # NPCI: handle@psp ("" clears it)
MAX_FEE = 1_000_000
METHOD_FIELD = Field("string", nullable=True, enum=METHODS, description="how the patient will pay")
UPI_VPA_FIELD = Field("string", pattern=VPA, description="the clinic's UPI id (VPA), e.g. clinic@okbank; '' clears it")
FEE_FIELD = Field("integer", minimum=0, maximum=MAX_FEE, description="fee in rupees; 0 clears it")
CLINIC_FIELDS = ("upi_vpa",)
QUEUE_FIELDS = ("fee",)


# -- appointments ---------------------------------------------------------------------------

async def record_method(db: Store, appointment_id: int, method: str | None) -> None:
    """Inside the booking's transaction: remember how the patient will pay."""
    if method is not None:
        await db.execute("INSERT INTO appointment_payments (appointment_id, method) VALUES (?, ?)",
                         (appointment_id, method))


async def mark_paid(store: Store, appointment_id: int, actor: str, now_ms: int) -> Json:
    """Reception saw the visit paid; 409 ``already_paid`` the second time."""
    async with store.transaction() as db:
        appt = await db.fetchone("SELECT id, status FROM appointments WHERE id = ?", (appointment_id,))
        if appt is None:
            raise NotFound("unknown appointment")
        if appt["status"] == "cancelled":
            raise Conflict("this appointment is cancelled", code="appointment_cancelled")
        row = await db.fetchone("SELECT paid_at FROM appointment_payments WHERE appointment_id = ?",
                                (appointment_id,))
        if row is not None and row["paid_at"] is not None:
            raise Conflict("this visit is already marked paid", code="already_paid")
        await db.execute("INSERT INTO appointment_payments (appointment_id, paid_at, paid_by) VALUES (?, ?, ?)"
                         " ON CONFLICT (appointment_id) DO UPDATE SET paid_at = excluded.paid_at,"
                         " paid_by = excluded.paid_by", (appointment_id, now_ms, actor))
        method = await db.fetchval("SELECT method FROM appointment_payments WHERE appointment_id = ?",
                                   (appointment_id,))
    return {"id": appointment_id, "payment_method": method, "paid": True}


async def method_counts(store: Store, clinic: str, day_from: str, day_to: str, min_count: int) -> Json:
    """How many appointments of those days chose each method (counts, never people); a method
    chosen fewer than ``min_count`` times shows as suppressed."""
    rows = await store.fetchall(
        "SELECT p.method AS method, count(*) AS n, sum(p.paid_at IS NOT NULL) AS paid FROM appointment_payments p"
        " JOIN appointments a ON a.id = p.appointment_id WHERE a.clinic = ? AND a.date BETWEEN ? AND ?"
        " AND p.method IS NOT NULL GROUP BY p.method", (clinic, day_from, day_to))
    found = {r["method"]: r for r in rows}
    out: Json = {}
    for m in METHODS:
        n = int(found[m]["n"]) if m in found else 0
        out[m] = ({"suppressed": True} if 0 < n < min_count else
                  {"suppressed": False, "appointments": n, "paid": int(found[m]["paid"]) if m in found else 0})
    return out


# -- clinic and queue settings -------------------------------------------------------------------

async def set_settings(store: Store, redis: aioredis.Redis, clinic: str, queue: str, values: Json) -> Json:
    """Store a clinic's ``upi_vpa`` (queue ``""``) or a queue's ``fee`` and mirror it; returns
    the fields as the API shows them."""
    upi = values.get("upi_vpa") or None
    fee = values.get("fee") or None
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO payment_settings (clinic, queue, upi_vpa, fee) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (clinic, queue) DO UPDATE SET upi_vpa = excluded.upi_vpa, fee = excluded.fee",
            (clinic, queue, upi, fee))
    field = f"fee:{queue}" if queue else "upi_vpa"
    value = fee if queue else upi
    if value is None:
        await redis.hdel(keys.payment(clinic), field)
    else:
        await redis.hset(keys.payment(clinic), field, str(value))
    return {"fee": fee} if queue else {"upi_vpa": upi}


async def mirror_all(store: Store, redis: aioredis.Redis) -> int:
    """Write every clinic's payment settings from the record into Redis (after a rebuild)."""
    rows = await store.fetchall("SELECT clinic, queue, upi_vpa, fee FROM payment_settings")
    async with redis.pipeline(transaction=True) as pipe:
        for clinic in {r["clinic"] for r in rows}:
            pipe.delete(keys.payment(clinic))
        for r in rows:
            if r["queue"] and r["fee"]:
                pipe.hset(keys.payment(r["clinic"]), f"fee:{r['queue']}", str(r["fee"]))
            elif not r["queue"] and r["upi_vpa"]:
                pipe.hset(keys.payment(r["clinic"]), "upi_vpa", r["upi_vpa"])
        await pipe.execute()
    return len(rows)


async def settings_of(redis: aioredis.Redis, clinic: str) -> Json:
    """``{upi_vpa, fees: {queue: fee}}`` from the mirror (any process)."""
    h: dict[str, str] = await redis.hgetall(keys.payment(clinic))
    return {"upi_vpa": h.get("upi_vpa"),
            "fees": {k.removeprefix("fee:"): int(v) for k, v in h.items() if k.startswith("fee:")}}


async def decorate_clinic(redis: aioredis.Redis, clinic: Json) -> Json:
    """A clinic view with ``upi_vpa`` and each queue's ``fee``."""
    found = await settings_of(redis, clinic["id"])
    clinic["upi_vpa"] = found["upi_vpa"]
    for q in clinic.get("queues", []):
        q["fee"] = found["fees"].get(q["id"])
    return clinic


# -- the ticket page -----------------------------------------------------------------------------

def upi_link(vpa: str, payee: str, fee: int, note: str) -> str:
    """An NPCI UPI deep link for a fixed amount in rupees."""
    return "upi://pay?" + urlencode({"pa": vpa, "pn": payee[:50], "am": f"{fee}.00", "cu": "INR", "tn": note[:50]})


async def ticket_offer(redis: aioredis.Redis, clinic: str, clinic_name: str, queue: str, label: str) -> Json | None:
    """``{fee, link, qr_svg}`` for a ticket of a queue with a fee at a clinic with a UPI id."""
    found = await settings_of(redis, clinic)
    fee = found["fees"].get(queue)
    if not found["upi_vpa"] or not fee:
        return None
    link = upi_link(found["upi_vpa"], clinic_name, fee, label)
    return {"fee": fee, "link": link, "qr_svg": segno.make(link, error="m").svg_inline(scale=4)}
