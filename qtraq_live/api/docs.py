"""The API description: ``GET /api/v1/openapi.json`` and the page ``/api/docs`` rendering it.

Both are public (the document holds no secret) and built once per app from the live routing
table, so what they describe is what the process serves.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ..display import render
from ..web.openapi import PREFIX, document
from ..web.responses import JSONResponse

Json = dict[str, Any]


def spec(app: Starlette) -> Json:
    cached: Json | None = getattr(app.state, "openapi", None)
    if cached is None:
        mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == PREFIX)
        cached = app.state.openapi = document(mount.routes)
    return cached


async def openapi_json(request: Request) -> Response:
    return JSONResponse(spec(request.app))


def _fields(schema: Json) -> list[Json]:
    """A body schema as rows: name, type, required, the other keywords as text."""
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type", "")
        rules = {k: v for k, v in prop.items() if k not in ("type", "description", "properties", "required",
                                                           "additionalProperties", "items")}
        rows.append({"name": name, "type": " or ".join(kind) if isinstance(kind, list) else kind,
                     "required": name in required, "rules": ", ".join(f"{k} {json.dumps(v)}" for k, v in rules.items()),
                     "description": prop.get("description", "")})
    return rows


def _operations(doc: Json) -> list[Json]:
    schemas = doc["components"]["schemas"]
    out = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            name = body["schema"]["$ref"].rsplit("/", 1)[1] if body else None
            out.append({
                "id": op["operationId"], "method": method.upper(), "path": path, "summary": op["summary"],
                "description": op["description"], "tag": op["tags"][0],
                "auth": " or ".join(" + ".join(s) for s in op["security"]) or "none",
                "parameters": op["parameters"], "body_name": name,
                "fields": _fields(schemas[name]) if name else [],
                "example": json.dumps(body["example"], indent=2, ensure_ascii=False) if body and "example" in body
                else "",
                "responses": sorted(op["responses"]),
            })
    return out


async def docs_page(request: Request) -> Response:
    doc = spec(request.app)
    errors = {code.lstrip("E"): r["description"] for code, r in doc["components"]["responses"].items()}
    return render.page(request, "api_docs.html", lang="en", info=doc["info"], operations=_operations(doc),
                       errors=errors)


routes: list[BaseRoute] = [Route("/openapi.json", openapi_json, methods=["GET"])]  # under /api/v1
page_routes: list[BaseRoute] = [Route("/api/docs", docs_page, methods=["GET"])]
