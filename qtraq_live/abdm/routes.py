"""HTTP for Scan & Share: the gateway's callback (root ``POST /api/v3/hip/patient/share``,
202 at once) and the staff API under ``/api/v1`` (reception's shared-profiles list and
one-click registration; an ABHA holder's export and erasure for the admin)."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..api.common import audit, engine_of, record_of
from ..errors import BadRequest, NotFound
from ..metrics import ABDM_SHARES
from ..runtime import redis_conn
from ..validation import EMPTY
from ..web.auth import require_staff
from ..web.request import read_json
from ..web.responses import JSONResponse
from . import caller, records, share
from .protocol import SHARE_CALLBACK_PATH, parse_share

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def _enabled(request: Request) -> None:
    if not request.app.state.settings["abdm.enabled"]:
        raise NotFound("ABDM Scan & Share is not enabled on this server")


def _bridge(request: Request) -> share.Bridge:
    """This process's bridge, made at its first share (the sync Redis client is for RQ)."""
    state = request.app.state
    bridge: share.Bridge | None = getattr(state, "abdm_bridge", None)
    if bridge is None:
        bridge = share.Bridge(state.settings, state.redis, state.engine, record_of(request),
                              redis_conn.sync_client(state.settings, decode=False))
        state.abdm_bridge = bridge
    return bridge


def _keys(request: Request) -> caller.GatewayKeys:
    keys: caller.GatewayKeys | None = getattr(request.app.state, "abdm_keys", None)
    if keys is None:
        keys = request.app.state.abdm_keys = caller.GatewayKeys(request.app.state.settings)
    return keys


async def share_callback(request: Request) -> Response:
    """The gateway hands over a patient's shared profile. Checked (caller, headers, body),
    turned into a ticket and a queued reply, and answered 202; the reply reaches the gateway
    through RQ (``jobs.send_on_share``)."""
    _enabled(request)
    try:
        if request.app.state.settings["abdm.verify"] == "jwt":
            await caller.verify(request.headers.get("authorization"), _keys(request))
        request_id = request.headers.get("request-id", "")
        if not REQUEST_ID.match(request_id):
            raise BadRequest("the REQUEST-ID header must be the gateway's request id", code="bad_header")
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest("request body is not valid JSON", code="bad_json") from None
        shared = parse_share(body)
    except Exception:
        ABDM_SHARES.labels("rejected").inc()
        raise
    await share.accept(_bridge(request), shared, request_id)
    return Response(status_code=202)


def _today(tz: str) -> tuple[Any, int]:
    """The clinic's date now, and its midnight in epoch ms."""
    now = datetime.fromtimestamp(time.time(), tz=ZoneInfo(tz))
    return now.date(), int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


async def list_profiles(request: Request) -> Response:
    """Shared profiles of a clinic waiting for registration, newest first; ``enabled: false``
    (and none) while Scan & Share is off, so reception's panel stays hidden."""
    await require_staff(request, "reception")
    clinic = await engine_of(request).get_clinic(request.path_params["clinic"])
    if clinic is None:
        raise NotFound("unknown clinic")
    if not request.app.state.settings["abdm.enabled"]:
        return JSONResponse({"enabled": False, "profiles": []})
    today, midnight_ms = _today(clinic["timezone"])
    profiles = await records.waiting(record_of(request), clinic["id"], today, midnight_ms)
    return JSONResponse({"enabled": True, "profiles": profiles})


async def register_profile(request: Request) -> Response:
    """One click at the desk: the clinic's patient record from a shared profile, linked to it."""
    user = await require_staff(request, "reception")
    await read_json(request, EMPTY)
    profile_id = int(request.path_params["profile"])
    patient = await records.register(record_of(request), profile_id, user.actor, int(time.time() * 1000))
    await audit(request, user.actor, "abdm.register", f"abdm_profile:{profile_id}")
    return JSONResponse({"patient": {"id": patient["id"], "name": patient["name"], "visits": patient["visits"],
                                     "abha_address": patient["abha_address"]}}, status_code=201)


def _abha(request: Request) -> str:
    abha = request.path_params["abha"]
    if not 3 <= len(abha) <= 100 or any(ord(ch) < 32 for ch in abha):
        raise NotFound("unknown ABHA address")
    return str(abha)


async def export_holder(request: Request) -> Response:
    """Everything held about one ABHA holder (the right of access), for the admin to hand over."""
    user = await require_staff(request, "admin")
    data = await records.export(record_of(request), _abha(request))
    await audit(request, user.actor, "abdm.export", "abdm_holder")
    return JSONResponse(data)


async def erase_holder(request: Request) -> Response:
    """Erase one ABHA holder's shared profiles, consent records, registrations and ticket names."""
    user = await require_staff(request, "admin")
    removed = await records.erase(record_of(request), request.app.state.redis, _abha(request))
    await audit(request, user.actor, "abdm.erase", "abdm_holder")
    return JSONResponse({"removed": removed})


# At the root: ABDM calls {bridge}/api/v3/hip/patient/share.
routes: list[BaseRoute] = [Route(SHARE_CALLBACK_PATH, share_callback, methods=["POST"])]

# Under /api/v1.
api_routes: list[BaseRoute] = [
    Route("/clinics/{clinic}/abdm/profiles", list_profiles, methods=["GET"]),
    Route("/abdm/profiles/{profile:int}/register", register_profile, methods=["POST"]),
    Route("/abdm/holders/{abha}", export_holder, methods=["GET"]),
    Route("/abdm/holders/{abha}", erase_holder, methods=["DELETE"]),
]
