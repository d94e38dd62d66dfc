"""Document endpoints: the account uploads, lists, fetches and deletes; staff read them
through an appointment (reception, or the doctor of its queue), every read audited.

Uploads are ``multipart/form-data`` with one field ``file`` and an optional ``appointment``;
the body limit of this one path is ``documents.max_bytes`` plus room for the multipart framing
(web/middleware.py), so an oversized upload is refused before it is read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..api.common import audit
from ..errors import BadRequest, Forbidden, Invalid, NotFound, PayloadTooLarge, UnsupportedMediaType
from ..web import auth
from ..web import ratelimit
from ..web.responses import JSONResponse
from . import appointments, documents, records
from .api import now_ms, require_account, store_of
from .document_files import Vault

Json = dict[str, Any]
FORM_FIELDS = ("file", "appointment")
UPLOADS_PER_HOUR = 60




def vault_of(request: Request) -> Vault:
    return Vault.of_app(request.app.state)


def _int_param(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise NotFound(f"unknown {name}") from None


async def _read_upload(request: Request, max_bytes: int) -> tuple[UploadFile, int | None]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the file as multipart/form-data, field 'file'", code="not_multipart")
    parser = MultiPartParser(request.headers, request.stream(), max_files=1, max_fields=len(FORM_FIELDS),
                             max_part_size=1024)
    parser.spool_max_size = max_bytes + 1  # the file stays in memory: its plaintext never touches the disk
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"file: {exc.message}", code="bad_multipart") from None
    for key in form.keys():
        if key not in FORM_FIELDS:
            raise Invalid(key, "unknown field", code="unknown_field")
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Invalid("file", "is required (a file part)", code="missing_field")
    if upload.size is not None and upload.size > max_bytes:
        raise PayloadTooLarge(f"file: larger than {max_bytes} bytes", code="file_too_large")
    raw = form.get("appointment")
    if raw is None or raw == "":
        return upload, None
    if not isinstance(raw, str) or not raw.isdigit():
        raise Invalid("appointment", "must be an appointment id")
    return upload, int(raw)


async def upload(request: Request) -> Response:
    account_id = await require_account(request)
    await ratelimit.hit(request.app.state.redis, "documents", str(account_id), UPLOADS_PER_HOUR, 3600)
    settings, store = request.app.state.settings, store_of(request)
    patient_id = _int_param(request, "patient")
    await records.get_patient(store, account_id, patient_id)
    vault = vault_of(request)
    max_bytes = settings["documents.max_bytes"]
    file, appointment_id = await _read_upload(request, max_bytes)
    try:
        data = await file.read(max_bytes + 1)
    finally:
        await file.close()
    doc = await documents.add(store, vault, account_id=account_id, patient_id=patient_id,
                              appointment_id=appointment_id, name=file.filename or "", data=data,
                              max_bytes=max_bytes, quota_bytes=settings["documents.quota_bytes"], now_ms=now_ms())
    return JSONResponse({"document": doc}, status_code=201)


async def list_mine(request: Request) -> Response:
    account_id = await require_account(request)
    return JSONResponse({"documents": await documents.list_for(store_of(request), account_id)})


def _file_response(request: Request, vault: Vault, row: Json) -> Response:
    thumb = request.query_params.get("thumb") in ("1", "true")
    if thumb and row["thumb"] is None:
        raise NotFound("this document has no thumbnail")
    body = vault.get(row["thumb"] if thumb else row["blob"])
    disposition = "inline" if row["type"].startswith("image/") else "attachment"
    return Response(body, media_type=row["type"], headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(row['name'])}",
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


async def get_mine(request: Request) -> Response:
    account_id = await require_account(request)
    row = await documents.own(store_of(request), account_id, request.path_params["document"])
    return _file_response(request, vault_of(request), row)


async def delete_mine(request: Request) -> Response:
    account_id = await require_account(request)
    await documents.delete_own(store_of(request), vault_of(request), account_id, request.path_params["document"])
    return Response(status_code=204)


def _may_see(user: auth.Staff, queue: str) -> None:
    """Reception (and admin) see every appointment's documents; a doctor those of their queues."""
    if not (user.at_least("reception") or queue in user.queues):
        raise Forbidden("only reception and the doctor of this queue see these documents", code="not_your_queue")


async def for_appointment(request: Request) -> Response:
    user = await auth.require_staff(request)
    store = store_of(request)
    appointment_id = _int_param(request, "appointment")
    appt = await appointments.get(store, appointment_id)
    _may_see(user, appt["queue"])
    found = await documents.for_appointment(store, appointment_id)
    await audit(request, user.actor, "appointment.documents", f"appointment:{appointment_id}")
    return JSONResponse({"documents": found})


async def staff_get(request: Request) -> Response:
    user = await auth.require_staff(request)
    row = await documents.with_queue(store_of(request), request.path_params["document"])
    _may_see(user, row["queue"])
    response = _file_response(request, vault_of(request), row)
    await audit(request, user.actor, "document.view", f"document:{row['id']}")
    return response


routes: list[BaseRoute] = [
    Route("/me/patients/{patient}/documents", upload, methods=["POST"]),
    Route("/me/documents", list_mine, methods=["GET"]),
    Route("/me/documents/{document}", get_mine, methods=["GET"]),
    Route("/me/documents/{document}", delete_mine, methods=["DELETE"]),
    Route("/appointments/{appointment}/documents", for_appointment, methods=["GET"]),
    Route("/documents/{document}", staff_get, methods=["GET"]),
]
