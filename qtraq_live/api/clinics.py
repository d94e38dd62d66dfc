"""Clinics and queue definitions: admins create and change them, staff read them."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import phones
from ..accounts import payments
from ..errors import Conflict, Invalid, NotFound
from ..languages import LANGS
from ..queue_engine import DEFAULT_AVG_SERVICE_S, DEFAULT_NOTIFY_AHEAD
from ..queue_engine import PREFIX as LABEL_PREFIX
from ..speech import languages as speech_languages
from ..speech.phrases import SUPPORTED as SPOKEN
from ..validation import NAME_MAX, SLUG, Field, Schema
from ..web.auth import require_staff
from ..web.request import read_json
from ..web.responses import JSONResponse
from .common import audit, engine_of

NAME = Field("string", min_length=1, max_length=NAME_MAX)
TIMEZONE = Field("string", min_length=1, max_length=64, description="IANA timezone, e.g. Asia/Kolkata")
LANG = Field("string", enum=LANGS)
PREFIX = Field("string", pattern=LABEL_PREFIX.pattern, description="label prefix, 1 to 3 capital letters")
AVG_SERVICE_S = Field("integer", minimum=10, maximum=4 * 3600)
NOTIFY_AHEAD = Field("integer", minimum=0, maximum=50, description="notify a patient this many places ahead")
SELF_CHECKIN = Field("boolean", description="patients may join from the QR page")
LANGUAGES = Field("array", items=Field("string", enum=SPOKEN), min_length=1, max_length=len(SPOKEN),
                  description="announcement languages in order (speech/phrases.py), default [\"en\", \"hi\"]")

REGION = Field("string", pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2: how local phone numbers are read")
UPDATE_CLINIC = Schema({"name": NAME, "timezone": TIMEZONE, "mask_names": Field("boolean"), "lang": LANG,
                        "region": REGION, "languages": LANGUAGES, "upi_vpa": payments.UPI_VPA_FIELD})
CREATE_CLINIC = Schema({
    "id": Field("string", required=True, pattern=SLUG),
    "name": replace(NAME, required=True),
    "timezone": replace(TIMEZONE, default="Asia/Kolkata"),
    "mask_names": Field("boolean", default=True, description="patient names masked on screens"),
    "lang": replace(LANG, default="en"),
    "region": replace(REGION, default=phones.DEFAULT_REGION),
    "languages": LANGUAGES,
    "upi_vpa": payments.UPI_VPA_FIELD,
})
UPDATE_QUEUE = Schema({"name": NAME, "prefix": PREFIX, "avg_service_s": AVG_SERVICE_S,
                       "self_checkin": SELF_CHECKIN, "notify_ahead": NOTIFY_AHEAD, "fee": payments.FEE_FIELD,
                       "archived": Field("boolean", description="archived: off the screens, takes no tickets; "
                                                                "only an empty queue can be archived")})
CREATE_QUEUE = Schema({
    "id": Field("string", required=True, pattern=SLUG),
    "name": replace(NAME, required=True),
    "prefix": replace(PREFIX, required=True),
    "avg_service_s": replace(AVG_SERVICE_S, default=DEFAULT_AVG_SERVICE_S),
    "self_checkin": replace(SELF_CHECKIN, default=False),
    "notify_ahead": replace(NOTIFY_AHEAD, default=DEFAULT_NOTIFY_AHEAD),
    "fee": payments.FEE_FIELD,
})


def _unique_languages(chosen: list[str] | None) -> list[str] | None:
    if chosen is not None and len(set(chosen)) != len(chosen):
        raise Invalid("languages", "must not name a language twice")
    return chosen


async def _save_languages(request: Request, clinic: str, chosen: list[str] | None) -> list[str]:
    """The clinic's announcement languages after this request (kept as they were when None)."""
    redis = request.app.state.redis
    if chosen is None:
        return await speech_languages.get(redis, clinic)
    return await speech_languages.set_languages(request.app.state.store, redis, clinic, chosen)


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """The fields a PATCH body set (absent optional fields come back as None)."""
    return {k: v for k, v in body.items() if v is not None}


async def _payment_fields(request: Request, clinic: str, queue: str, body: dict[str, Any]) -> dict[str, Any]:
    """Take the payment settings (issue #22) out of a body and store them; returns them."""
    found = {k: body.pop(k) for k in (*payments.QUEUE_FIELDS, *payments.CLINIC_FIELDS) if k in body}
    if not found:
        return {}
    return await payments.set_settings(request.app.state.store, request.app.state.redis, clinic, queue, found)


async def list_clinics(request: Request) -> Response:
    await require_staff(request)
    engine = engine_of(request)
    clinics = [c for c in [await engine.get_clinic(cid) for cid in await engine.clinic_ids()] if c]
    for c in clinics:
        c["languages"] = await speech_languages.get(request.app.state.redis, c["id"])
    return JSONResponse({"clinics": clinics})


async def create_clinic(request: Request) -> Response:
    user = await require_staff(request, "admin")
    body = await read_json(request, CREATE_CLINIC)
    spoken = _unique_languages(body.pop("languages"))
    upi = {k: body.pop(k) for k in payments.CLINIC_FIELDS if k in body}
    upi = {k: v for k, v in upi.items() if v is not None}
    clinic = await engine_of(request).create_clinic(
        body["id"], body["name"], timezone=body["timezone"], mask_names=body["mask_names"], lang=body["lang"],
        region=body["region"], actor=user.actor)
    clinic["languages"] = await _save_languages(request, clinic["id"], spoken)
    clinic = {**clinic, **await _payment_fields(request, clinic["id"], "", upi)}
    await audit(request, user.actor, "clinic.create", f"clinic:{clinic['id']}")
    return JSONResponse(clinic, status_code=201)


async def get_clinic(request: Request) -> Response:
    await require_staff(request)
    clinic = await engine_of(request).get_clinic(request.path_params["clinic"])
    if clinic is None:
        raise NotFound("unknown clinic")
    clinic["languages"] = await speech_languages.get(request.app.state.redis, clinic["id"])
    return JSONResponse(await payments.decorate_clinic(request.app.state.redis, clinic))


async def create_queue(request: Request) -> Response:
    user = await require_staff(request, "admin")
    body = await read_json(request, CREATE_QUEUE)
    fee = {"fee": body.pop("fee")} if body.get("fee") is not None else {}
    body.pop("fee", None)
    queue = await engine_of(request).create_queue(request.path_params["clinic"], body.pop("id"), actor=user.actor,
                                                  **body)
    queue = {**queue, **await _payment_fields(request, queue["clinic"], queue["id"], fee)}
    await audit(request, user.actor, "queue.create", f"queue:{queue['id']}")
    return JSONResponse(queue, status_code=201)


async def update(request: Request, kind: str) -> Response:
    """PATCH a clinic or a queue definition: only the fields sent change."""
    user = await require_staff(request, "admin")
    body = _present(await read_json(request, UPDATE_CLINIC if kind == "clinic" else UPDATE_QUEUE))
    target = request.path_params[kind]
    engine = engine_of(request)
    spoken = _unique_languages(body.pop("languages", None))
    if kind == "queue" and body.get("archived"):
        snap = await engine.queue_snapshot(target)
        if snap["waiting"] or snap["now_serving"]:
            raise Conflict("queue: patients are still waiting or being served; finish or move them first",
                           code="queue_not_empty")
    apply = engine.update_clinic if kind == "clinic" else engine.update_queue
    pay = {k: body.pop(k) for k in (*payments.CLINIC_FIELDS, *payments.QUEUE_FIELDS) if k in body}
    if body or (spoken is None and not pay):
        changed = await apply(target, actor=user.actor, **body)
    else:  # only languages or payment settings: the queue state (and its version) stays as it is
        current = await (engine.get_clinic(target) if kind == "clinic" else engine.get_queue(target))
        if current is None:
            raise NotFound(f"unknown {kind}")
        changed = current
    if kind == "clinic":
        changed["languages"] = await _save_languages(request, target, spoken)
    clinic_id = target if kind == "clinic" else changed["clinic"]
    changed.update(await _payment_fields(request, clinic_id, "" if kind == "clinic" else target, pay))
    await audit(request, user.actor, f"{kind}.update", f"{kind}:{target}")
    return JSONResponse(changed)


routes: list[BaseRoute] = [
    Route("/clinics", list_clinics, methods=["GET"]),
    Route("/clinics", create_clinic, methods=["POST"]),
    Route("/clinics/{clinic}", get_clinic, methods=["GET"]),
    Route("/clinics/{clinic}", partial(update, kind="clinic"), methods=["PATCH"], name="update_clinic"),
    Route("/clinics/{clinic}/queues", create_queue, methods=["POST"]),
    Route("/queues/{queue}", partial(update, kind="queue"), methods=["PATCH"], name="update_queue"),
]
