"""Admin endpoints for notices: the delivery log / dead-letter list, retry, clinic channels.

    GET  /notifications?status=failed&limit=100    notices, newest first (no text, masked recipient)
    POST /notifications/{id}/retry                 a failed notice back in line
    GET  /clinics/{clinic}/notify-channels         which channels the clinic overrides
    PUT  /clinics/{clinic}/notify-channels         {email?, sms?, whatsapp?}: URL to set, null to clear
    POST /notifications/test                       {channel, to, clinic?}: send a test message now
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import Conflict, Invalid, NotFound
from ..validation import E164, EMAIL, EMAIL_MAX, Field, Schema
from ..web.auth import require_staff
from ..web.request import known_params, query_int, read_json
from ..web.responses import JSONResponse
from ..workers import channels
from ..workers import delivery_log, overrides
from ..workers.channels import CHANNELS
from ..workers.ledger import STATES
from ..workers.notices import enqueue_account_notice, request_retry
from .common import audit, engine_of, record_of

MAX_LIMIT = 500
UNCHANGED = ""  # an absent field; an empty string itself is refused (min_length)
URL = Field("string", nullable=True, default=UNCHANGED, min_length=4, max_length=2000,
            description="Apprise URL, {to} = recipient; null clears, absent leaves as is")
CHANNEL_CHANGES = Schema({c: URL for c in CHANNELS})


def _query(request: Request) -> tuple[str | None, int]:
    known_params(request, ("status", "limit"))
    status = request.query_params.get("status")
    if status is not None and status not in STATES:
        raise Invalid("status", f"must be one of {', '.join(STATES)}")
    return status, query_int(request, "limit", 1, MAX_LIMIT, 100)


async def list_notifications(request: Request) -> Response:
    await require_staff(request, "admin")
    status, limit = _query(request)
    return JSONResponse({"notifications": await delivery_log.list_notices(record_of(request), status, limit)})


async def retry_notification(request: Request) -> Response:
    admin = await require_staff(request, "admin")
    row = await delivery_log.get_notice(record_of(request), request.path_params["id"])
    if row is None:
        raise NotFound("unknown notification")
    if not await request_retry(request.app.state.redis, row["key"]):
        raise Conflict("only a failed notification that has not expired can be retried", code="not_retryable")
    await audit(request, admin.actor, "notification.retry", f"notification:{row['id']}")
    view = delivery_log.view({**row, "status": "queued", "reason": None})
    return JSONResponse({"notification": view})


async def _clinic_id(request: Request) -> str:
    clinic: dict[str, Any] | None = await engine_of(request).get_clinic(request.path_params["clinic"])
    if clinic is None:
        raise NotFound("unknown clinic")
    return str(clinic["id"])


async def get_channels(request: Request) -> Response:
    await require_staff(request, "admin")
    current = await overrides.clinic_channels(record_of(request), await _clinic_id(request))
    return JSONResponse({"overrides": {c: c in current for c in CHANNELS}})


async def put_channels(request: Request) -> Response:
    admin = await require_staff(request, "admin")
    clinic = await _clinic_id(request)
    raw = await read_json(request, CHANNEL_CHANGES)
    changes = {c: v for c, v in raw.items() if v != UNCHANGED}
    current = await overrides.set_clinic_channels(record_of(request), request.app.state.redis, clinic, changes)
    await audit(request, admin.actor, "clinic.notify_channels", f"clinic:{clinic}")
    return JSONResponse({"overrides": {c: c in current for c in CHANNELS}})


TEST_SEND = Schema({
    "channel": Field("string", required=True, enum=CHANNELS),
    "to": Field("string", required=True, min_length=3, max_length=EMAIL_MAX,
                description="an email address for email, an E.164 number for sms and whatsapp"),
    "clinic": Field("string", nullable=True, max_length=40, description="use this clinic's own channel URLs"),
})


async def test_send(request: Request) -> Response:
    """Send one test message through a channel, so an admin sees the set-up work end to end
    (the result shows in the delivery log like any notice)."""
    admin = await require_staff(request, "admin")
    body = await read_json(request, TEST_SEND)
    Field("string", pattern=EMAIL if body["channel"] == "email" else E164).check("to", body["to"])
    clinic_name, override = "qtraq-live", {}
    if body["clinic"]:
        clinic = await engine_of(request).get_clinic(body["clinic"])
        if clinic is None:
            raise NotFound("unknown clinic")
        clinic_name = clinic["name"]
        override = await overrides.clinic_channels(record_of(request), clinic["id"])
    if body["channel"] not in channels.effective(channels.configured(request.app.state.settings), override):
        raise Conflict(f"no {body['channel']} channel is configured", code="channel_not_configured")
    await enqueue_account_notice(request.app.state.redis, kind="test", to=body["to"], channel=body["channel"],
                                 context={"clinic": clinic_name}, lang=request.app.state.settings["notify.default_lang"],
                                 dedupe_key=f"test:{secrets.token_hex(8)}", subject=admin.actor,
                                 clinic=body["clinic"] or "")
    await audit(request, admin.actor, "notification.test", f"channel:{body['channel']}")
    return JSONResponse({"queued": True}, status_code=202)


routes: list[BaseRoute] = [
    Route("/notifications/test", test_send, methods=["POST"]),
    Route("/notifications", list_notifications, methods=["GET"]),
    Route("/notifications/{id:int}/retry", retry_notification, methods=["POST"]),
    Route("/clinics/{clinic}/notify-channels", get_channels, methods=["GET"]),
    Route("/clinics/{clinic}/notify-channels", put_channels, methods=["PUT"]),
]
