"""Appointment endpoints: slots, booking, cancelling, check-in; the clinic's check-in QR.

Check-in is done by reception (staff session or API token), or by the account itself when on
site: the patient scans the clinic's QR of the day (``GET /clinics/{c}/checkin-code``), which
opens the portal with that day's code, and the portal sends it with the check-in.
"""

from __future__ import annotations

import hmac
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..api.common import audit, engine_of
from ..api.issue import track_url
from ..errors import Forbidden, Invalid, NotFound
from ..validation import Field, Schema
from ..web import auth
from ..web.request import public_base, read_json
from ..web.responses import JSONResponse, range_report, wants_csv
from . import appointments, notices, payments, records, stats
from .api import now_ms, require_account, store_of

Json = dict[str, Any]
CHECKIN = Schema({"code": Field("string", max_length=64, description="the clinic's check-in code of the day")})


def _int_param(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise NotFound(f"unknown {name}") from None


async def _with_ticket(request: Request, row: Json) -> Json:
    """An appointment as the account sees it, with its live ticket (and token) once checked in."""
    out = appointments.view(row)
    if row["ticket_id"] is not None:
        engine = engine_of(request)
        ticket = await engine.ticket(row["ticket_id"])
        token = await engine.ticket_token(row["ticket_id"])
        if ticket is not None and token is not None:
            out["ticket"] = {"id": ticket["id"], "label": ticket["label"], "status": ticket["status"],
                             "position": ticket["position"], "eta_s": ticket["eta_s"], "token": token,
                             "track_url": track_url(request, token)}
    return out


async def list_mine(request: Request) -> Response:
    account_id = await require_account(request)
    rows = await appointments.list_for(store_of(request), account_id)
    return JSONResponse({"appointments": [await _with_ticket(request, r) for r in rows]})


async def book(request: Request) -> Response:
    account_id = await require_account(request)
    body = await read_json(request, appointments.BOOK)
    store, engine = store_of(request), engine_of(request)
    appt = await appointments.book(store, engine, account_id, body, now_ms())
    await notices.send_appointment(engine, store, request.app.state.settings, "appointment_booked",
                                   await appointments.get(store, appt["id"]), tag="booked")
    return JSONResponse(appt, status_code=201)


async def cancel(request: Request) -> Response:
    account_id = await require_account(request)
    store = store_of(request)
    appt = await appointments.cancel(store, account_id, _int_param(request, "appointment"), now_ms())
    await notices.send_appointment(engine_of(request), store, request.app.state.settings, "appointment_cancelled",
                                   await appointments.get(store, appt["id"]), tag="cancelled")
    return JSONResponse(appt)


async def check_in(request: Request) -> Response:
    """By reception, or by the account holding the appointment with the clinic's code of the day."""
    appointment_id = _int_param(request, "appointment")
    store, engine = store_of(request), engine_of(request)
    body = await read_json(request, CHECKIN)
    session = await auth.current_session(request)
    if session is not None and session.get("kind") == "account" and "authorization" not in request.headers:
        account_id = await require_account(request)
        appt = await appointments.get(store, appointment_id, account_id)
        _, tz = await appointments.queue_place(engine, appt["queue"])
        expected = appointments.checkin_code(request.app.state.settings.secret_key, appt["clinic"],
                                             appointments.clinic_today(tz, now_ms()))
        if not hmac.compare_digest((body["code"] or "").encode(), expected.encode()):
            raise Forbidden("scan the clinic's check-in QR code on site to check in", code="not_on_site")
        account = await records.get_account_row(store, account_id)
        ticket = await appointments.check_in(store, engine, appointment_id, account_id=account_id, now_ms=now_ms(),
                                             actor=f"account:{account_id}", lang=account["lang"])
    else:
        user = await auth.require_staff(request, "reception")
        ticket = await appointments.check_in(store, engine, appointment_id, account_id=None, now_ms=now_ms(),
                                             actor=user.actor)
        await audit(request, user.actor, "appointment.check_in", f"appointment:{appointment_id}")
    return JSONResponse({"ticket": ticket, "track_url": track_url(request, ticket["token"])}, status_code=201)


async def reception_view(request: Request) -> Response:
    """Reception looks up who an appointment ticket belongs to (the live ticket has no name)."""
    user = await auth.require_staff(request, "reception")
    store = store_of(request)
    appointment_id = _int_param(request, "appointment")
    row = await appointments.get(store, appointment_id)
    out = appointments.view(row)
    out["patient_name"] = await appointments.holder_name(store, row)
    await audit(request, user.actor, "appointment.view", f"appointment:{appointment_id}")
    return JSONResponse(out)


async def slots(request: Request) -> Response:
    """A day's slots and what is free: anyone may look before booking."""
    day = request.query_params.get("date", "")
    if not day:
        raise Invalid("date", "is required (YYYY-MM-DD)", code="missing_field")
    return JSONResponse(await appointments.availability(store_of(request), engine_of(request),
                                                        request.path_params["queue"], day, now_ms()))


async def put_slots(request: Request) -> Response:
    user = await auth.require_staff(request, "admin")
    body = await read_json(request, appointments.SLOTS)
    queue_id = request.path_params["queue"]
    out = await appointments.set_slots(store_of(request), engine_of(request), queue_id, body, now_ms())
    await audit(request, user.actor, "queue.slots", f"queue:{queue_id}")
    return JSONResponse(out)


async def delete_slots(request: Request) -> Response:
    user = await auth.require_staff(request, "admin")
    queue_id = request.path_params["queue"]
    if await engine_of(request).get_queue(queue_id) is None:
        raise NotFound("unknown queue")
    await appointments.clear_slots(store_of(request), queue_id)
    await audit(request, user.actor, "queue.slots_clear", f"queue:{queue_id}")
    return Response(status_code=204)


async def checkin_code(request: Request) -> Response:
    """Today's on-site check-in code of a clinic, its portal URL and the QR as SVG."""
    await auth.require_staff(request, "reception")
    clinic_id = request.path_params["clinic"]
    engine = engine_of(request)
    clinic = await engine.get_clinic(clinic_id)
    if clinic is None:
        raise NotFound("unknown clinic")
    day = appointments.clinic_today(clinic["timezone"], now_ms())
    code = appointments.checkin_code(request.app.state.settings.secret_key, clinic_id, day)
    url = f"{public_base(request)}/account?checkin={code}"
    svg = segno.make(url, error="m").svg_inline(scale=4)
    return JSONResponse({"clinic": clinic_id, "date": day.isoformat(), "code": code, "url": url, "qr_svg": svg})


async def clinic_stats(request: Request) -> Response:
    """De-identified aggregates (admin); ``?format=csv`` for a spreadsheet."""
    await auth.require_staff(request, "admin")
    q = request.query_params
    as_csv = wants_csv(request)
    data = await stats.clinic_stats(store_of(request), request.path_params["clinic"], q.get("from"), q.get("to"),
                                    now_ms())
    data["payment_methods"] = await payments.method_counts(store_of(request), data["clinic"], data["from"], data["to"],
                                                           stats.MIN_PEOPLE)  # counts of methods, never people (#22)
    return range_report(as_csv, "stats", data, stats.to_csv)


routes: list[BaseRoute] = [
    Route("/me/appointments", list_mine, methods=["GET"]),
    Route("/me/appointments", book, methods=["POST"]),
    Route("/me/appointments/{appointment}", cancel, methods=["DELETE"]),
    Route("/appointments/{appointment}", reception_view, methods=["GET"]),
    Route("/appointments/{appointment}/check-in", check_in, methods=["POST"]),
    Route("/queues/{queue}/slots", slots, methods=["GET"]),
    Route("/queues/{queue}/slots", put_slots, methods=["PUT"]),
    Route("/queues/{queue}/slots", delete_slots, methods=["DELETE"]),
    Route("/clinics/{clinic}/checkin-code", checkin_code, methods=["GET"]),
    Route("/clinics/{clinic}/stats", clinic_stats, methods=["GET"]),
]
