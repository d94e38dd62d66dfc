"""Clinics and queue definitions: admins create and change them, staff read them."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import phones
from ..auth import require_staff
from ..errors import Conflict, NotFound
from ..validation import SLUG, Field, Schema
from ..web.request import read_json
from ..web.responses import JSONResponse
from .common import audit, engine_of

NAME = Field("string", min_length=1, max_length=80)
TIMEZONE = Field("string", min_length=1, max_length=64, description="IANA timezone, e.g. Asia/Kolkata")
LANG = Field("string", enum=("en", "hi"))
PREFIX = Field("string", pattern=r"^[A-Z]{1,3}$", description="label prefix, 1 to 3 capital letters")
AVG_SERVICE_S = Field("integer", minimum=10, maximum=4 * 3600)
NOTIFY_AHEAD = Field("integer", minimum=0, maximum=50, description="notify a patient this many places ahead")
SELF_CHECKIN = Field("boolean", description="patients may join from the QR page")

REGION = Field("string", pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2: how local phone numbers are read")
UPDATE_CLINIC = Schema({"name": NAME, "timezone": TIMEZONE, "mask_names": Field("boolean"), "lang": LANG,
                        "region": REGION})
CREATE_CLINIC = Schema({
    "id": Field("string", required=True, pattern=SLUG),
    "name": replace(NAME, required=True),
    "timezone": replace(TIMEZONE, default="Asia/Kolkata"),
    "mask_names": Field("boolean", default=True, description="patient names masked on screens"),
    "lang": replace(LANG, default="en"),
    "region": replace(REGION, default=phones.DEFAULT_REGION),
})
UPDATE_QUEUE = Schema({"name": NAME, "prefix": PREFIX, "avg_service_s": AVG_SERVICE_S,
                       "self_checkin": SELF_CHECKIN, "notify_ahead": NOTIFY_AHEAD,
                       "archived": Field("boolean", description="archived: off the screens, takes no tickets; "
                                                                "only an empty queue can be archived")})
CREATE_QUEUE = Schema({
    "id": Field("string", required=True, pattern=SLUG),
    "name": replace(NAME, required=True),
    "prefix": replace(PREFIX, required=True),
    "avg_service_s": replace(AVG_SERVICE_S, default=300),
    "self_checkin": replace(SELF_CHECKIN, default=False),
    "notify_ahead": replace(NOTIFY_AHEAD, default=3),
})


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """The fields a PATCH body set (absent optional fields come back as None)."""
    return {k: v for k, v in body.items() if v is not None}


async def list_clinics(request: Request) -> Response:
    await require_staff(request)
    engine = engine_of(request)
    clinics = [c for c in [await engine.get_clinic(cid) for cid in await engine.clinic_ids()] if c]
    return JSONResponse({"clinics": clinics})


async def create_clinic(request: Request) -> Response:
    user = await require_staff(request, "admin")
    body = await read_json(request, CREATE_CLINIC)
    clinic = await engine_of(request).create_clinic(
        body["id"], body["name"], timezone=body["timezone"], mask_names=body["mask_names"], lang=body["lang"],
        region=body["region"], actor=user.actor)
    await audit(request, user.actor, "clinic.create", f"clinic:{clinic['id']}")
    return JSONResponse(clinic, status_code=201)


async def get_clinic(request: Request) -> Response:
    await require_staff(request)
    clinic = await engine_of(request).get_clinic(request.path_params["clinic"])
    if clinic is None:
        raise NotFound("unknown clinic")
    return JSONResponse(clinic)


async def create_queue(request: Request) -> Response:
    user = await require_staff(request, "admin")
    body = await read_json(request, CREATE_QUEUE)
    queue = await engine_of(request).create_queue(request.path_params["clinic"], body.pop("id"), actor=user.actor,
                                                  **body)
    await audit(request, user.actor, "queue.create", f"queue:{queue['id']}")
    return JSONResponse(queue, status_code=201)


async def update(request: Request, kind: str) -> Response:
    """PATCH a clinic or a queue definition: only the fields sent change."""
    user = await require_staff(request, "admin")
    body = _present(await read_json(request, UPDATE_CLINIC if kind == "clinic" else UPDATE_QUEUE))
    target = request.path_params[kind]
    engine = engine_of(request)
    if kind == "queue" and body.get("archived"):
        snap = await engine.queue_snapshot(target)
        if snap["waiting"] or snap["now_serving"]:
            raise Conflict("queue: patients are still waiting or being served; finish or move them first",
                           code="queue_not_empty")
    apply = engine.update_clinic if kind == "clinic" else engine.update_queue
    changed = await apply(target, actor=user.actor, **body)
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
