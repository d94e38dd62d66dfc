"""Admin endpoints the admin page needs beyond the core API: staff users and display keys.
(The stats charts read ``accounts.stats``, the same de-identified figures as ``/clinics/{c}/stats``.)

Writes go through :mod:`qtraq_live.record.access` (SQLite record + Redis mirror in one step), so
they work on the primary only; a hub answers them 421 before they get here.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..engine import redis_keys as keys
from ..errors import Invalid, NotFound
from ..record import access
from ..validation import NAME_MAX, SLUG, Field, Schema
from ..web.auth import require_staff
from ..web.request import public_base, read_json
from ..web.responses import JSONResponse
from .common import audit, engine_of, record_of

CREATE_USER = Schema({
    "username": Field("string", required=True, min_length=2, max_length=40),
    "password": Field("string", required=True, min_length=access.PASSWORD_MIN, max_length=access.PASSWORD_MAX),
    "role": Field("string", required=True, enum=access.ROLES),
    "queues": Field("array", default=[], items=Field("string", pattern=SLUG), description="doctor: queues they act on"),
})
CREATE_KEY = Schema({"label": Field("string", default="", max_length=NAME_MAX, description="where the screen hangs")})


async def _clinic(request: Request) -> dict[str, Any]:
    clinic = await engine_of(request).get_clinic(request.path_params["clinic"])
    if clinic is None:
        raise NotFound("unknown clinic")
    return clinic


async def list_users(request: Request) -> Response:
    await require_staff(request, "admin")
    rows = await record_of(request).fetchall(
        "SELECT id, username, role, queues, disabled, created_at FROM users ORDER BY username", ())
    users = [{"id": r["id"], "username": r["username"], "role": r["role"], "queues": _json_list(r["queues"]),
              "disabled": bool(r["disabled"]), "created_at": r["created_at"]} for r in rows]
    return JSONResponse({"users": users})


def _json_list(text: str) -> list[str]:
    value = json.loads(text or "[]")
    return [str(x) for x in value] if isinstance(value, list) else []


async def create_user(request: Request) -> Response:
    admin = await require_staff(request, "admin")
    body = await read_json(request, CREATE_USER)
    if body["role"] == "doctor" and not body["queues"]:
        raise Invalid("queues", "a doctor needs at least one queue")
    engine = engine_of(request)
    for q in body["queues"]:
        if await engine.get_queue(q) is None:
            raise Invalid("queues", f"unknown queue {q}")
    uid = await access.create_user(record_of(request), request.app.state.redis, body["username"], body["password"],
                                   body["role"], body["queues"])
    await audit(request, admin.actor, "user.create", f"user:{uid}")
    user = {"id": uid, "username": body["username"].lower(), "role": body["role"], "queues": sorted(set(body["queues"]))}
    return JSONResponse({"user": user}, status_code=201)


async def list_display_keys(request: Request) -> Response:
    await require_staff(request, "admin")
    clinic = await _clinic(request)
    rows = await record_of(request).fetchall(
        "SELECT id, label, created_at, revoked_at FROM display_keys WHERE clinic = ? ORDER BY id", (clinic["id"],))
    return JSONResponse({"keys": [dict(r) for r in rows]})


async def create_display_key(request: Request) -> Response:
    admin = await require_staff(request, "admin")
    clinic = await _clinic(request)
    body = await read_json(request, CREATE_KEY)
    store = record_of(request)
    key = await access.create_display_key(store, request.app.state.redis, clinic["id"], body["label"])
    row = await store.fetchone("SELECT id, label, created_at FROM display_keys WHERE key_hash = ?",
                               (keys.secret_hash(key),))
    await audit(request, admin.actor, "display_key.create", f"clinic:{clinic['id']}")
    return JSONResponse({**dict(row or {}), "key": key,
                         "display_url": f"{public_base(request)}/display/{clinic['id']}?key={key}"}, status_code=201)


async def revoke_display_key(request: Request) -> Response:
    admin = await require_staff(request, "admin")
    clinic = await _clinic(request)
    key_id = request.path_params["key_id"]
    await access.revoke_display_key(record_of(request), request.app.state.redis, clinic["id"], key_id)
    await audit(request, admin.actor, "display_key.revoke", f"display_key:{key_id}")
    return JSONResponse({"revoked": key_id})


routes: list[BaseRoute] = [
    Route("/admin/users", list_users, methods=["GET"]),
    Route("/admin/users", create_user, methods=["POST"]),
    Route("/admin/clinics/{clinic}/display-keys", list_display_keys, methods=["GET"]),
    Route("/admin/clinics/{clinic}/display-keys", create_display_key, methods=["POST"]),
    Route("/admin/clinics/{clinic}/display-keys/{key_id:int}", revoke_display_key, methods=["DELETE"]),
]
