"""Reception's list of a day's appointments: ``GET /clinics/{clinic}/appointments?date=&q=``.

The day defaults to today in the clinic's timezone. ``q`` searches the patient's name (any part,
any case) or mobile (the digits typed, anywhere in the number), so reception finds a patient by
what they say at the desk and checks them in with one click; nobody types an appointment number.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..api.common import audit, engine_of
from ..errors import Invalid, NotFound
from ..web import auth
from ..web.responses import JSONResponse
from .api import now_ms, store_of
from .appointments import clinic_today

Json = dict[str, Any]
LIMIT = 500
Q_MAX = 80

# Who each appointment is for: the linked patient, else the name it was imported with; the
# mobile of the account (booked) or of the import row.
SQL = """
SELECT a.id, a.queue, a.slot, a.status, a.ticket_id,
       coalesce(p.name, ac.name) AS name, coalesce(acc.mobile, ac.mobile) AS mobile
FROM appointments a
LEFT JOIN patients p ON p.id = a.patient_id
LEFT JOIN appointment_contacts ac ON ac.appointment_id = a.id
LEFT JOIN accounts acc ON acc.id = a.account_id
WHERE a.clinic = ? AND a.date = ?
  AND (? = '' OR lower(coalesce(p.name, ac.name, '')) LIKE ? ESCAPE '\\'
       OR (? != '' AND coalesce(acc.mobile, ac.mobile, '') LIKE ?))
ORDER BY a.slot IS NULL, a.slot, a.id
LIMIT ?
"""


def _like(text: str) -> str:
    return "%" + re.sub(r"([%_\\])", r"\\\1", text) + "%"


async def day_appointments(request: Request) -> Response:
    user = await auth.require_staff(request, "reception")
    clinic_id = request.path_params["clinic"]
    clinic = await engine_of(request).get_clinic(clinic_id)
    if clinic is None:
        raise NotFound("unknown clinic")
    params = request.query_params
    day_text = params.get("date") or clinic_today(clinic["timezone"], now_ms()).isoformat()
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise Invalid("date", "must be a date YYYY-MM-DD") from None
    q = params.get("q", "").strip().lower()
    if len(q) > Q_MAX:
        raise Invalid("q", f"must be at most {Q_MAX} characters")
    digits = re.sub(r"\D", "", q)
    if len(digits) < 3:  # "9" or "12" would match half the day's numbers
        digits = ""
    rows = await store_of(request).fetchall(SQL, (clinic_id, day.isoformat(), q, _like(q), digits,
                                                  _like(digits), LIMIT))
    await audit(request, user.actor, "appointment.list", f"clinic:{clinic_id}")
    return JSONResponse({"date": day.isoformat(), "appointments": [
        {"id": r["id"], "patient": {"name": r["name"]}, "queue": r["queue"], "slot": r["slot"],
         "status": r["status"], "ticket_id": r["ticket_id"]} for r in rows]})


routes: list[BaseRoute] = [
    Route("/clinics/{clinic}/appointments", day_appointments, methods=["GET"]),
]
