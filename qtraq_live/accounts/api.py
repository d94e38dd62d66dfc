"""Patient-account endpoints: register, verify, log in, profile, consent, sessions, patients.

An account authenticates with a session of kind ``account`` (the same Redis sessions and
CSRF rule as staff, see ``web/auth.py``). Every body goes through its schema; a PATCH changes
only the fields it sends. The record is SQLite, so a ``--role hub`` process answers 421.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import date, datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import phones
from ..engine import redis_keys as keys
from ..errors import Invalid, MisdirectedWrite, NotFound, RateLimited, Unauthorized
from ..record import security_log
from ..record.store import Store
from ..validation import Field, Schema
from ..web import auth, demo_outbox
from ..web import ratelimit
from ..web.request import client_ip, read_json
from ..web.responses import JSONResponse
from . import (broadcast, codes, consent, consent_records, documents, feedback, nominee, notices, passwords,
               privacy, records, send_limits, useragent)
from .document_files import Vault

log = logging.getLogger(__name__)

Json = dict[str, Any]

VERIFY = Schema({"channel": Field("string", required=True, enum=codes.CHANNELS),
                 "code": Field("string", required=True, pattern=r"\d{6}", description="the 6-digit code")})
RESEND = Schema({"channel": Field("string", required=True, enum=codes.CHANNELS)})
LOGIN = Schema({"email": records.EMAIL_FIELD, "mobile": records.MOBILE_FIELD,
                "password": Field("string", required=True, max_length=passwords.MAX_LENGTH)})
CONSENT_PUT = Schema({k: Field("boolean", required=True) for k in consent.KINDS})


def now_ms() -> int:
    return int(time.time() * 1000)


def today() -> date:
    return datetime.now(timezone.utc).date()


def store_of(request: Request) -> Store:
    store: Store | None = request.app.state.store
    if store is None:
        raise MisdirectedWrite("accounts live on the primary; this server only relays queues")
    return store


async def require_account(request: Request) -> int:
    """The account id of the request's session (with the CSRF check on writes)."""
    session = await auth.current_session(request)
    if session is None or session.get("kind") != "account":
        raise Unauthorized("log in to your account first", code="not_authenticated")
    auth.check_csrf(request, session)
    return int(session["uid"])


async def sent_fields(request: Request, schema: Schema) -> Json:
    """A PATCH body: validated, and only the fields the caller actually sent."""
    body = await read_json(request, schema)
    raw = await request.body()
    return {k: body[k] for k in (json.loads(raw) if raw.strip() else {})}


async def open_session(request: Request, account_id: int, *, new_device_notice: bool) -> tuple[str, str]:
    """Open an account session and log it (time, IP, OS, browser); a login from a device the
    account never used is told to the account (a security notice). Returns ``(sid, csrf)``."""
    sid, csrf = await auth.start_session(request, "account", account_id)
    os_name, browser = useragent.parse(request.headers.get("user-agent"))
    store, at = store_of(request), now_ms()
    if new_device_notice:
        await broadcast.new_device(store, request.app.state.redis, request.app.state.settings, account_id, os_name,
                                   browser, at)
    log_id = await records.log_session(store, account_id, client_ip(request), os_name, browser, at)
    await request.app.state.redis.hset(keys.session(sid), "log", str(log_id))  # so /me/sessions can end it
    return sid, csrf


async def _login_response(request: Request, account_id: int, status: int = 200, *,
                          new_device_notice: bool = False) -> Response:
    """Open an account session (see :func:`open_session`) and answer with the CSRF token."""
    sid, csrf = await open_session(request, account_id, new_device_notice=new_device_notice)
    store = store_of(request)
    response = JSONResponse({"csrf_token": csrf, "account": await _account(store, account_id)}, status_code=status)
    auth.set_session_cookie(response, request, sid)
    return response


async def _seclog(request: Request, event: str, account_id: int | None = None, login: str | None = None,
                  detail: Json | None = None) -> None:
    """An entry in the security log, by pseudonymous subject (``record/security_log.py``)."""
    secret = request.app.state.settings.secret_key
    subject = (security_log.pseudonym(secret, "account", account_id) if account_id is not None else
               security_log.pseudonym(secret, "login", login) if login else "")
    await security_log.record(request.app.state.store, event, subject, "self", client_ip(request), detail)


async def _account(store: Store, account_id: int) -> Json:
    return records.account_view(await records.get_account_row(store, account_id),
                                await consent.current(store, account_id))


async def _send_code(request: Request, account_id: int, channel: str) -> None:
    """A fresh code to the account's contact: 429 when that destination or that account has
    had too many lately (``send_limits``, in Redis) or this code was resent too often."""
    store, settings, redis = store_of(request), request.app.state.settings, request.app.state.redis
    row = await records.get_account_row(store, account_id)
    await send_limits.count_code(redis, account_id, channel, row[channel])
    sent_ms = now_ms()
    code = await codes.issue(store, settings.secret_key, account_id, channel, sent_ms)
    await notices.send_code(redis, store, settings, account_id, channel, code, sent_ms)
    if demo_outbox.enabled(settings):  # the demo shows it on /demo/outbox: no provider needed to try it
        await demo_outbox.put(redis, channel, row[channel], code)


async def _after_contact_change(request: Request, account_id: int, channels: list[str],
                                holders: dict[str, Json]) -> None:
    """After registration or a contact change: a code to each new contact, or, when another
    account holds it verified, a notice to that owner instead. The answer is the same either
    way, and a limited send is skipped (the person can ask again with a resend)."""
    store, settings, redis = store_of(request), request.app.state.settings, request.app.state.redis
    for channel in channels:
        holder = holders.get(channel)
        try:
            if holder is not None and holder["verified"]:
                row = await records.get_account_row(store, account_id)
                await send_limits.count_in_use_notice(redis, channel, row[channel])
                await notices.send_contact_in_use(redis, store, settings, holder["id"], channel, now_ms())
            else:
                await _send_code(request, account_id, channel)
        except RateLimited:
            log.info("account %d: %s code not sent (rate limited)", account_id, channel)


# -- registration and login -------------------------------------------------------------

async def register(request: Request) -> Response:
    auth.check_same_site(request)
    redis = request.app.state.redis
    await ratelimit.hit(redis, "register", client_ip(request), 30, 3600)
    body = await read_json(request, records.REGISTER)
    store = store_of(request)
    account_id, holders = await records.create_account(store, body, now_ms(), today())
    chosen = await consent.current(store, account_id)
    await consent_records.add(store, notice_version=request.app.state.settings["privacy.notice_version"],
                              purposes=consent_records.purposes_of(chosen), channel="web", at_ms=now_ms(),
                              account_id=account_id)
    await _seclog(request, "account.registered", account_id, detail={"purposes": consent_records.purposes_of(chosen)})
    await notices.consent_changed(redis, account_id, (await consent.current(store, account_id))["notifications"])
    await notices.send_welcome(redis, store, request.app.state.settings, account_id)
    await _after_contact_change(request, account_id, [c for c in codes.CHANNELS if body.get(c)], holders)
    return await _login_response(request, account_id, status=201)


async def verify(request: Request) -> Response:
    account_id = await require_account(request)
    redis = request.app.state.redis
    # Guessing codes is bounded per code in SQLite; these bound it per address and per account.
    await ratelimit.hit(redis, "verify-ip", client_ip(request), 30, 900)
    await ratelimit.hit(redis, "verify-account", str(account_id), 10, 900)
    body = await read_json(request, VERIFY)
    store = store_of(request)
    await codes.verify(store, request.app.state.settings.secret_key, account_id, body["channel"], body["code"],
                       now_ms())
    return JSONResponse(await _account(store, account_id))


async def resend(request: Request) -> Response:
    account_id = await require_account(request)
    body = await read_json(request, RESEND)
    row = await records.get_account_row(store_of(request), account_id)
    if not row[body["channel"]] or row[f"{body['channel']}_verified"]:
        raise Invalid("channel", f"this account has no unverified {body['channel']}", code="nothing_to_verify")
    await _send_code(request, account_id, body["channel"])
    # When the next one may be asked for, so the page can say so rather than let a press fail.
    return JSONResponse({"sent": body["channel"], "retry_after_s": codes.RESEND_GAP_MS // 1000})


async def login(request: Request) -> Response:
    auth.check_same_site(request)
    body = await read_json(request, LOGIN)
    if bool(body["email"]) == bool(body["mobile"]):
        raise Invalid("email", "give either email or mobile", code="missing_field")
    redis = request.app.state.redis
    await ratelimit.hit(redis, "account-login-ip", client_ip(request), 30, 900)
    mobile = phones.optional_e164(body["mobile"])  # one number, however it was typed, one limit
    await ratelimit.hit(redis, "account-login-id", (body["email"] or mobile or "").lower(), 10, 900)
    found = await records.find_login(store_of(request), body["email"], mobile)
    ok = await asyncio.to_thread(passwords.verify_password, found["password_hash"] if found else None, body["password"])
    if not ok or found is None:
        await _seclog(request, "account.login_failed", login=body["email"] or body["mobile"])
        raise Unauthorized("wrong email/mobile or password", code="invalid_credentials")
    await _seclog(request, "account.login", found["id"])
    log.info("account %d logged in", found["id"])
    return await _login_response(request, found["id"], new_device_notice=True)


async def logout(request: Request) -> Response:
    await require_account(request)
    await auth.end_session(request.app.state.redis, request.cookies.get(auth.SESSION_COOKIE))
    response = JSONResponse({"logged_out": True})
    auth.clear_session_cookie(response)
    return response


# -- profile, consent, sessions, export, erasure ---------------------------------------------

async def me(request: Request) -> Response:
    account_id = await require_account(request)
    return JSONResponse(await _account(store_of(request), account_id))


async def patch_me(request: Request) -> Response:
    account_id = await require_account(request)
    changes = await sent_fields(request, records.ACCOUNT_PATCH)
    store = store_of(request)
    if any(ch in changes for ch in codes.CHANNELS):  # bounds code bombing and contact probing alike
        await send_limits.count_contact_change(request.app.state.redis, account_id)
    channels, holders = await records.update_account(store, account_id, changes, now_ms(), today())
    await _after_contact_change(request, account_id, channels, holders)
    if "password" in changes:  # whoever knew the old one is logged out everywhere else, and is told
        await auth.end_sessions_of(request.app.state.redis, "account", account_id,
                                   keep=request.cookies.get(auth.SESSION_COOKIE))
        await broadcast.password_changed(store, request.app.state.redis, request.app.state.settings, account_id,
                                         now_ms())
    return JSONResponse(await _account(store, account_id))


async def delete_me(request: Request) -> Response:
    account_id = await require_account(request)
    store, redis = store_of(request), request.app.state.redis
    await _seclog(request, "account.erased", account_id, detail={"categories": privacy.CATEGORIES})
    # Patient services (#22): what erasure must reach beyond the rows, read before they go.
    account = await records.get_account_row(store, account_id)
    files = await documents.files_of(store, "account_id = ?", (account_id,))
    tickets = [r["ticket_id"] for r in await store.fetchall(
        "SELECT ticket_id FROM appointments WHERE account_id = ? AND ticket_id IS NOT NULL", (account_id,))]
    await feedback.forget_comments(store, tickets)  # before the erasure's WAL checkpoint
    await privacy.erase_account(store, redis, request.app.state.engine, account_id)
    if files:
        Vault.of_app(request.app.state).remove(*files)
    notice = broadcast.erasure_messages(account, request.app.state.settings, now_ms())  # sent after the answer
    response = Response(status_code=204, background=BackgroundTask(broadcast.send_erasure, notice))
    auth.clear_session_cookie(response)
    return response


async def export(request: Request) -> Response:
    account_id = await require_account(request)
    store = store_of(request)
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "zip"):
        raise Invalid("format", "must be json or zip")
    data = await privacy.export_account(store, request.app.state.engine, account_id, now_ms(), today())
    data["documents"] = await documents.list_for(store, account_id)
    await _seclog(request, "account.exported", account_id)
    if fmt == "zip":  # the JSON and every document file (#22)
        body = await documents.export_zip(store, Vault.of_app(request.app.state), account_id,
                                          JSONResponse(data).body)
        return Response(body, media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="my-data.zip"'})
    return JSONResponse(data, headers={"Content-Disposition": 'attachment; filename="my-data.json"'})


async def get_consent(request: Request) -> Response:
    account_id = await require_account(request)
    store = store_of(request)
    return JSONResponse({"current": await consent.current(store, account_id),
                         "history": await consent.history(store, account_id)})


async def put_consent(request: Request) -> Response:
    account_id = await require_account(request)
    body = await read_json(request, CONSENT_PUT)
    store = store_of(request)
    before, after = await consent.record(store, account_id, body, now_ms(), today())
    if before != after:
        await consent_records.add(store, notice_version=request.app.state.settings["privacy.notice_version"],
                                  purposes=consent_records.purposes_of(after), channel="web", at_ms=now_ms(),
                                  account_id=account_id)
        await _seclog(request, "consent.changed", account_id, detail={"purposes": consent_records.purposes_of(after)})
    if before["notifications"] != after["notifications"]:
        await notices.consent_changed(request.app.state.redis, account_id, after["notifications"])
    return JSONResponse({"current": after, "history": await consent.history(store, account_id)})


async def _live_sessions(request: Request, account_id: int) -> dict[str, str]:
    """The account's live sessions: ``{log id: Redis key}``."""
    redis, live = request.app.state.redis, {}
    async for key in redis.scan_iter(match=keys.SESSIONS_PATTERN, count=500):
        kind, uid, log_id = await redis.hmget(key, "kind", "uid", "log")
        if kind == "account" and uid == str(account_id) and log_id:
            live[log_id] = key
    return live


async def get_nominee(request: Request) -> Response:
    account_id = await require_account(request)
    return JSONResponse({"nominee": await nominee.get(store_of(request), account_id)})


async def put_nominee(request: Request) -> Response:
    account_id = await require_account(request)
    body = await read_json(request, nominee.NOMINEE)
    found = await nominee.put(store_of(request), account_id, body, now_ms())
    await _seclog(request, "nominee.recorded", account_id)
    return JSONResponse({"nominee": found})


async def delete_nominee(request: Request) -> Response:
    account_id = await require_account(request)
    await nominee.delete(store_of(request), account_id)
    await _seclog(request, "nominee.removed", account_id)
    return Response(status_code=204)


async def sessions(request: Request) -> Response:
    """The login log, each with whether it is still signed in (and which one is this one)."""
    account_id = await require_account(request)
    live = await _live_sessions(request, account_id)
    mine = keys.session(request.cookies.get(auth.SESSION_COOKIE, ""))
    rows = await records.list_sessions(store_of(request), account_id)
    return JSONResponse({"sessions": [{**r, "active": str(r["id"]) in live, "current": live.get(str(r["id"])) == mine}
                                      for r in rows]})


async def end_one_session(request: Request) -> Response:
    """Log out one of the account's sessions (a phone left somewhere, a login not theirs)."""
    account_id = await require_account(request)
    live = await _live_sessions(request, account_id)
    key = live.get(str(request.path_params["session"]))
    if key is None:
        raise NotFound("no such signed-in session")
    async with request.app.state.redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.publish(keys.CREDENTIALS_CHANGED, "session")
        await pipe.execute()
    return Response(status_code=204)


# -- patients ---------------------------------------------------------------------------------

def _patient_id(request: Request) -> int:
    try:
        return int(request.path_params["patient"])
    except ValueError:
        raise NotFound("unknown patient") from None


async def list_patients(request: Request) -> Response:
    account_id = await require_account(request)
    rows = await records.list_patients(store_of(request), account_id)
    return JSONResponse({"patients": [records.patient_view(r, today()) for r in rows]})


async def add_patient(request: Request) -> Response:
    account_id = await require_account(request)
    body = await read_json(request, records.PATIENT_NEW)
    patient = await records.add_patient(store_of(request), account_id, body, now_ms(), today())
    return JSONResponse(patient, status_code=201)


async def patch_patient(request: Request) -> Response:
    account_id = await require_account(request)
    changes = await sent_fields(request, records.PATIENT_PATCH)
    patient = await records.update_patient(store_of(request), account_id, _patient_id(request), changes,
                                           now_ms(), today())
    return JSONResponse(patient)


async def delete_patient(request: Request) -> Response:
    account_id = await require_account(request)
    store, patient_id = store_of(request), _patient_id(request)
    files = await documents.files_of(store, "account_id = ? AND patient_id = ?", (account_id, patient_id))
    await records.delete_patient(store, account_id, patient_id, now_ms())  # their document rows cascade
    if files:
        Vault.of_app(request.app.state).remove(*files)
    return Response(status_code=204)


async def privacy_info(request: Request) -> Response:
    """Public: whom to contact with a grievance, and how long walk-in contacts are kept."""
    settings = request.app.state.settings
    return JSONResponse({"grievance_contact": settings["privacy.grievance_contact"],
                         "walkin_contact_days": settings["privacy.walkin_contact_days"],
                         "notice_version": settings["privacy.notice_version"]})


routes: list[BaseRoute] = [
    Route("/accounts", register, methods=["POST"]),
    Route("/accounts/verify", verify, methods=["POST"]),
    Route("/accounts/verify/resend", resend, methods=["POST"]),
    Route("/auth/account-login", login, methods=["POST"]),
    Route("/auth/account-logout", logout, methods=["POST"]),
    Route("/me", me, methods=["GET"]),
    Route("/me", patch_me, methods=["PATCH"]),
    Route("/me", delete_me, methods=["DELETE"]),
    Route("/me/export", export, methods=["GET"]),
    Route("/me/consent", get_consent, methods=["GET"]),
    Route("/me/consent", put_consent, methods=["PUT"]),
    Route("/me/sessions", sessions, methods=["GET"]),
    Route("/me/nominee", get_nominee, methods=["GET"]),
    Route("/me/nominee", put_nominee, methods=["PUT"]),
    Route("/me/nominee", delete_nominee, methods=["DELETE"]),
    Route("/me/sessions/{session:int}", end_one_session, methods=["DELETE"]),
    Route("/me/patients", list_patients, methods=["GET"]),
    Route("/me/patients", add_patient, methods=["POST"]),
    Route("/me/patients/{patient}", patch_patient, methods=["PATCH"]),
    Route("/me/patients/{patient}", delete_patient, methods=["DELETE"]),
    Route("/privacy", privacy_info, methods=["GET"]),
]
