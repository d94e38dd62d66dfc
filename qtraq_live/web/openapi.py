"""The OpenAPI 3.1 document of ``/api/v1``, generated from the app's routes and the very
:class:`~qtraq_live.validation.Schema` objects the endpoints validate with.

:data:`OPERATIONS` is the one hand-written part: per ``(method, path)`` a summary, who may
call it and the body schema *object* (imported from the endpoint's module, never copied).
Paths, path parameters and their types come from the routing table itself, and
``tests/test_openapi.py`` fails when a route has no entry here or an entry names a schema
other than the one its endpoint validates with.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Route

from .. import __version__
from ..accounts import api as accounts_api
from ..accounts import api_appointments, appointments, broadcast, feedback, nominee, records
from ..api import admin, admin_staff, auth_routes, clinics, issue, notifications, queues, tickets
from ..api import push as api_push
from ..record.access import ROLES
from ..validation import EMPTY, Schema
from .auth import SESSION_COOKIE

log = logging.getLogger(__name__)

Json = dict[str, Any]
PREFIX = "/api/v1"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STAFF_ROLES = ("staff", *ROLES)
# who -> what the caller must hold; staff roles also accept a bearer token
WHO = ("public", "token", "account", "account or reception", *STAFF_ROLES)


@dataclass(frozen=True)
class Op:
    summary: str
    who: str  # one of WHO
    body: Schema | None = None
    example: Json | None = None
    status: int = 200
    params: tuple[tuple[str, str, str, str], ...] = ()  # (name, "query" or "header", JSON type, description)
    limited: bool = False  # answers 429 with Retry-After when called too often


# Named body schemas, shown under components/schemas. Keys are the names in the document.
SCHEMAS: dict[str, Schema] = {
    "Empty": EMPTY,
    "StaffLogin": auth_routes.LOGIN_BODY,
    "ClinicCreate": clinics.CREATE_CLINIC,
    "ClinicUpdate": clinics.UPDATE_CLINIC,
    "QueueCreate": clinics.CREATE_QUEUE,
    "QueueUpdate": clinics.UPDATE_QUEUE,
    "TicketIssue": issue.STAFF_ISSUE,
    "PublicJoin": issue.PUBLIC_JOIN,
    "NextPress": queues.NEXT_BODY,
    "Transfer": tickets.TRANSFER_BODY,
    "UserCreate": admin.CREATE_USER,
    "DisplayKeyCreate": admin.CREATE_KEY,
    "NotifyChannels": notifications.CHANNEL_CHANGES,
    "NotifyTest": notifications.TEST_SEND,
    "AccountRegister": records.REGISTER,
    "AccountVerify": accounts_api.VERIFY,
    "AccountResend": accounts_api.RESEND,
    "AccountLogin": accounts_api.LOGIN,
    "AccountPatch": records.ACCOUNT_PATCH,
    "ConsentPut": accounts_api.CONSENT_PUT,
    "PatientNew": records.PATIENT_NEW,
    "PatientPatch": records.PATIENT_PATCH,
    "AppointmentBook": appointments.BOOK,
    "CheckIn": api_appointments.CHECKIN,
    "Slots": appointments.SLOTS,
    "PushSubscription": api_push.SUBSCRIPTION,
    "FeedbackRate": feedback.BODY,
    "AdminNotice": broadcast.BODY,
    "UserPatch": admin_staff.PATCH_USER,
    "TokenCreate": admin_staff.NEW_TOKEN,
    "Nominee": nominee.NOMINEE,
}

_TICKET_ACTIONS = {
    "recall": "Call a called or serving ticket again",
    "serve": "Mark a called ticket as being served",
    "skip": "Skip a called ticket (not here)",
    "done": "Finish a called or serving ticket",
    "no-show": "Mark a called or skipped ticket as a no-show",
    "cancel": "Cancel a ticket",
    "requeue": "Put a called, skipped or no-show ticket back in its place",
}
_CONTACT = {"name": "Asha K", "mobile": "+919812345678", "notify": True}

OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/openapi.json"): Op("This document (OpenAPI 3.1)", "public"),
    ("POST", "/auth/login"): Op("Staff login: sets the session cookie, returns the CSRF token", "public",
                                auth_routes.LOGIN_BODY, {"username": "reception1", "password": "correct-horse"}),
    ("POST", "/auth/logout"): Op("End the staff session", "staff"),
    ("GET", "/auth/me"): Op("The logged-in staff user", "staff"),
    ("GET", "/clinics"): Op("Clinics", "staff"),
    ("POST", "/clinics"): Op("Create a clinic", "admin", clinics.CREATE_CLINIC,
                             {"id": "city-clinic", "name": "City Clinic", "timezone": "Asia/Kolkata"}, 201),
    ("GET", "/clinics/{clinic}"): Op("A clinic with its queues", "staff"),
    ("PATCH", "/clinics/{clinic}"): Op("Change a clinic", "admin", clinics.UPDATE_CLINIC, {"mask_names": True}),
    ("POST", "/clinics/{clinic}/queues"): Op("Create a queue", "admin", clinics.CREATE_QUEUE,
                                             {"id": "gp", "name": "General physician", "prefix": "A"}, 201),
    ("PATCH", "/queues/{queue}"): Op("Change a queue", "admin", clinics.UPDATE_QUEUE, {"self_checkin": True}),
    ("GET", "/queues/{queue}"): Op("Snapshot: version, paused, now_serving, waiting", "staff"),
    ("POST", "/queues/{queue}/tickets"): Op("Issue a ticket → {ticket, track_url}", "reception", issue.STAFF_ISSUE,
                                            {**_CONTACT, "priority": 0}, 201),
    ("POST", "/queues/{queue}/next"): Op(
        "Finish this counter's patient and call the next (header Idempotency-Key: a retry calls no one else)",
        "doctor", queues.NEXT_BODY, {"counter": "2"},
        params=(("Idempotency-Key", "header", "string", "any string; a retry with the same key is answered alike"),)),
    ("POST", "/queues/{queue}/counters/{counter}/close"): Op(
        "Close a counter: its patient, if still called or serving, is done as with next, and it leaves the open "
        "counters → {closed, done: ticket or null}; closing a closed counter changes nothing (closed: false)",
        "doctor", EMPTY, {}),
    ("POST", "/queues/{queue}/pause"): Op("Pause a queue", "reception", EMPTY, {}),
    ("POST", "/queues/{queue}/resume"): Op("Resume a queue", "reception", EMPTY, {}),
    ("GET", "/tickets/{ticket_id}"): Op("A ticket", "staff"),
    **{("POST", f"/tickets/{{ticket_id}}/{action}"): Op(summary, "doctor", EMPTY, {})
       for action, summary in _TICKET_ACTIONS.items()},
    ("POST", "/tickets/{ticket_id}/call"): Op(
        "Call this waiting, skipped or no-show ticket now, out of order; the counter's previous call ends as "
        "with next (header Idempotency-Key as for next)", "doctor", queues.NEXT_BODY, {"counter": "2"},
        params=(("Idempotency-Key", "header", "string", "any string; a retry with the same key is answered alike"),)),
    ("GET", "/clinics/{clinic}/appointments"): Op(
        "The day's appointments for reception: {date, appointments: [{id, patient: {name}, queue, slot, status, "
        "ticket_id}]}", "reception", params=(
            ("date", "query", "string", "YYYY-MM-DD; default today in the clinic's timezone"),
            ("q", "query", "string", "part of the patient's name or at least 3 digits of the mobile"))),
    ("GET", "/clinics/{clinic}/set-aside"): Op(
        "Today's skipped and no-show tickets, to bring back: {tickets: [{id, queue, label, status, name}]}", "doctor"),
    ("POST", "/tickets/{ticket_id}/transfer"): Op("Move a ticket to another queue of the clinic, keeping its place",
                                                  "reception", tickets.TRANSFER_BODY, {"queue": "eye"}),
    ("POST", "/public/queues/{queue}/join"): Op("Self check-in (queues with self_checkin) → {ticket, track_url}",
                                                "public", issue.PUBLIC_JOIN, _CONTACT, 201, limited=True),
    ("GET", "/t/{token}"): Op("A patient's own ticket", "token", limited=True),
    ("DELETE", "/t/{token}"): Op("The patient leaves the queue", "token", EMPTY, {}),
    ("GET", "/admin/users"): Op("Staff users", "admin"),
    ("POST", "/admin/users"): Op("Create a staff user", "admin", admin.CREATE_USER,
                                 {"username": "dr-rao", "password": "a long passphrase", "role": "doctor",
                                  "queues": ["gp"]}, 201),
    ("GET", "/admin/clinics/{clinic}/display-keys"): Op("Display keys of a clinic (no secrets)", "admin"),
    ("POST", "/admin/clinics/{clinic}/display-keys"): Op("Create a display key (shown once)", "admin",
                                                         admin.CREATE_KEY, {"label": "lobby TV"}, 201),
    ("DELETE", "/admin/clinics/{clinic}/display-keys/{key_id}"): Op("Revoke a display key", "admin"),
    ("GET", "/audit"): Op("Staff audit log, newest first (one entry per change)", "admin", params=(
        ("from", "query", "string", "UTC day YYYY-MM-DD or time YYYY-MM-DDTHH:MM:SSZ"),
        ("to", "query", "string", "UTC day (inclusive) or time (exclusive)"),
        ("actor", "query", "string", "an actor id, e.g. user:3"),
        ("action", "query", "string", "an action (queue.next) or a prefix ending in '.' (ticket.)"),
        ("limit", "query", "integer", "1 to 500, default 100"),
        ("before", "query", "integer", "the next_before of the previous page"))),
    ("GET", "/notifications"): Op("Notice delivery log", "admin", params=(
        ("status", "query", "string", "queued, sending, retrying, sent, failed or dropped"),
        ("limit", "query", "integer", "1 to 500, default 100"))),
    ("POST", "/notifications/{id}/retry"): Op("Send a failed notice again", "admin"),
    ("POST", "/notifications/test"): Op("Send one test message through a channel now (shows in the delivery log)",
                                        "admin", notifications.TEST_SEND, {"channel": "sms", "to": "+919812345678"}),
    ("GET", "/clinics/{clinic}/notify-channels"): Op("A clinic's notice channel overrides", "admin"),
    ("PUT", "/clinics/{clinic}/notify-channels"): Op("Set a clinic's notice channel overrides", "admin",
                                                     notifications.CHANNEL_CHANGES,
                                                     {"sms": "json://gateway.local/send?:to={to}"}),
    ("POST", "/accounts"): Op("Register a patient account; sends verification codes", "public", records.REGISTER,
                              {"name": "Asha K", "email": "asha@example.com", "password": "a long passphrase",
                               "consent": {"notifications": True, "analytics": False}}, 201, limited=True),
    ("POST", "/accounts/verify"): Op("Verify an email or mobile with its code", "account", accounts_api.VERIFY,
                                     {"channel": "email", "code": "123456"}, limited=True),
    ("POST", "/accounts/verify/resend"): Op("Send a new verification code", "account", accounts_api.RESEND,
                                            {"channel": "mobile"}, limited=True),
    ("POST", "/auth/account-login"): Op("Account login: sets the session cookie, returns the CSRF token", "public",
                                        accounts_api.LOGIN, {"email": "asha@example.com",
                                                             "password": "a long passphrase"}, limited=True),
    ("POST", "/auth/account-logout"): Op("End the account session", "account"),
    ("GET", "/me"): Op("The account's profile", "account"),
    ("PATCH", "/me"): Op("Change the profile (a new email or mobile is verified again)", "account",
                         records.ACCOUNT_PATCH, {"city": "Pune"}),
    ("DELETE", "/me"): Op("Erase the account and its personal data", "account"),
    ("GET", "/me/export"): Op("Every piece of personal data held, as JSON", "account"),
    ("GET", "/me/consent"): Op("Current consent and its history", "account"),
    ("PUT", "/me/consent"): Op("Give or withdraw consent (withdrawal stops notices at once)", "account",
                               accounts_api.CONSENT_PUT, {"notifications": True, "analytics": False,
                                                          "marketing": False}),
    ("GET", "/me/sessions"): Op("Logged sessions: time, IP, OS, browser", "account"),
    ("GET", "/me/patients"): Op("Linked patients", "account"),
    ("POST", "/me/patients"): Op("Link a patient", "account", records.PATIENT_NEW,
                                 {"name": "Ravi K", "age": 7, "relation": "child", "consent_confirmed": True}, 201),
    ("PATCH", "/me/patients/{patient}"): Op("Change a linked patient", "account", records.PATIENT_PATCH,
                                            {"blood_group": "O+"}),
    ("DELETE", "/me/patients/{patient}"): Op("Remove a linked patient", "account"),
    ("GET", "/privacy"): Op("Privacy notice facts: purposes, retention, grievance contact", "public"),
    ("GET", "/me/appointments"): Op("The account's appointments", "account"),
    ("POST", "/me/appointments"): Op("Book an appointment for a linked patient", "account", appointments.BOOK,
                                     {"patient": 1, "queue": "gp", "date": "2026-12-01", "slot": "10:30"}, 201),
    ("DELETE", "/me/appointments/{appointment}"): Op("Cancel an appointment", "account"),
    ("GET", "/appointments/{appointment}"): Op("An appointment, for the desk", "reception"),
    ("POST", "/appointments/{appointment}/check-in"): Op("Check in: issues the ticket", "account or reception",
                                                         api_appointments.CHECKIN, {"code": "K7Q2"}),
    ("GET", "/queues/{queue}/slots"): Op("Appointment slots of a day", "public",
                                         params=(("date", "query", "string", "YYYY-MM-DD, clinic time"),)),
    ("PUT", "/queues/{queue}/slots"): Op("Set a queue's appointment slots", "admin", appointments.SLOTS,
                                         {"slot_minutes": 15, "capacity": 2, "opens": "09:00", "closes": "13:00"}),
    ("DELETE", "/queues/{queue}/slots"): Op("Stop taking appointments for a queue", "admin"),
    ("GET", "/clinics/{clinic}/checkin-code"): Op("Today's check-in code of a clinic", "reception"),
    ("GET", "/clinics/{clinic}/stats"): Op("De-identified aggregates (?format=csv for CSV)", "admin", params=(
        ("from", "query", "string", "YYYY-MM-DD"), ("to", "query", "string", "YYYY-MM-DD"),
        ("format", "query", "string", "json or csv"))),
    ("GET", "/clinics/{clinic}/abdm/profiles"): Op("ABHA profiles shared at the clinic's counters, waiting for registration",
                                                   "reception"),
    ("POST", "/abdm/profiles/{profile}/register"): Op("Register a shared ABHA profile as the clinic's patient record",
                                                      "reception", status=201),
    ("GET", "/abdm/holders/{abha}"): Op("Everything held about one ABHA address (export)", "admin"),
    ("DELETE", "/abdm/holders/{abha}"): Op("Erase everything held about one ABHA address", "admin"),
    # Replies from patients, Web Push, spoken calls (issue #20)
    ("POST", "/inbound/sms"): Op("A patient's SMS reply from the gateway: JSON or form {from, text, id?}, signed "
                                 "(X-Signature: sha256=<HMAC of the body>)", "public", limited=True,
                                 params=(("X-Signature", "header", "string", "sha256=<hex HMAC-SHA256>"),)),
    ("GET", "/inbound/whatsapp"): Op("WhatsApp Cloud API webhook verification: echoes hub.challenge", "public",
                                     params=(("hub.mode", "query", "string", "subscribe"),
                                             ("hub.verify_token", "query", "string", "[inbound] whatsapp_verify_token"),
                                             ("hub.challenge", "query", "string", "digits to echo"))),
    ("POST", "/inbound/whatsapp"): Op("WhatsApp Cloud API webhook: patients' replies (X-Hub-Signature-256)", "public",
                                      params=(("X-Hub-Signature-256", "header", "string", "sha256=<hex>"),)),
    ("GET", "/clinics/{clinic}/calls/{version}/audio"): Op(
        "The call made at that clinic version, spoken in one language (audio/wav), for the TV", "public",
        params=(("lang", "query", "string", "en, hi, bn, ta, te, mr, gu, kn, ml, pa, or, as or ur"),
                ("key", "query", "string", "the screen's display key"))),
    ("GET", "/clinics/{clinic}/speech"): Op("The clinic's announcement languages, in order, for the TV", "public",
                                            params=(("key", "query", "string", "the screen's display key"),)),
    ("GET", "/push/key"): Op("The server's VAPID public key for Web Push → {public_key}", "public"),
    ("POST", "/t/{token}/push"): Op("Send this ticket's notices to this browser by Web Push (a PushSubscription)",
                                    "token", api_push.SUBSCRIPTION,
                                    {"endpoint": "https://fcm.googleapis.com/fcm/send/c1KrmpTuRm0:APA91bE",
                                     "expirationTime": None, "keys": {
                                         "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1"
                                                   "XbjhazAkj7I99e8QcYP7DkM",
                                         "auth": "tBHItJI5svbpez7KI4CCXg"}}, 201, limited=True),
    # patient services (#22)
    ("POST", "/me/patients/{patient}/documents"): Op(
        "Upload a document for a linked patient: multipart/form-data, field file (JPEG, PNG or PDF, checked by "
        "content), optional appointment → 201 {document}; 413 too large or over quota, 415 type/content refused",
        "account", status=201, limited=True),
    ("GET", "/me/documents"): Op("The account's documents", "account"),
    ("GET", "/me/documents/{document}"): Op("One document's file (?thumb=1: its thumbnail)", "account"),
    ("DELETE", "/me/documents/{document}"): Op("Delete a document and its thumbnail", "account"),
    ("GET", "/appointments/{appointment}/documents"): Op(
        "Documents attached to an appointment (reception, or the doctor of its queue; audited)", "doctor"),
    ("GET", "/documents/{document}"): Op("A document's file, through its appointment (audited)", "doctor"),
    ("POST", "/feedback/{token}"): Op("Rate a finished visit once (1–5, optional comment)", "token", feedback.BODY,
                                      {"rating": 5, "comment": "Quick and kind"}, 201, limited=True),
    ("GET", "/clinics/{clinic}/feedback"): Op("Feedback aggregates per queue and day (?format=csv)", "admin", params=(
        ("from", "query", "string", "YYYY-MM-DD"), ("to", "query", "string", "YYYY-MM-DD"),
        ("format", "query", "string", "json or csv"))),
    ("POST", "/admin/notices"): Op("Send a notice to the accounts that consented to its purpose (dry_run: count only)",
                                   "admin", broadcast.BODY,
                                   {"purpose": "maintenance", "channels": ["email", "sms"],
                                    "subject": "Closed on Sunday", "text": "The clinic is closed this Sunday.",
                                    "dry_run": True}),
    ("POST", "/appointments/{appointment}/paid"): Op("Mark a visit paid", "reception", EMPTY, {}),
    ("GET", "/auth/oidc/login"): Op("Sign in with the OpenID Connect provider (a redirect)", "public"),
    ("GET", "/auth/oidc/callback"): Op("The provider's redirect back (then to /account)", "public"),
    # -- security round two (issue #21): staff access, sessions, DPDP --
    ("PATCH", "/admin/users/{user}"): Op("Disable or enable a user, reset the password, change the role (at once "
                                         "everywhere)", "admin", admin_staff.PATCH_USER, {"disabled": True}),
    ("DELETE", "/admin/users/{user}/sessions"): Op("End every session of a staff user", "admin"),
    ("POST", "/admin/users/{user}/tokens"): Op("Create an API token (shown once), optionally scoped and expiring",
                                               "admin", admin_staff.NEW_TOKEN, {"scope": "press", "expires_days": 90},
                                               201),
    ("GET", "/admin/tokens"): Op("API tokens (never the secrets)", "admin",
                                 params=(("user", "query", "string", "only this username's tokens"),)),
    ("DELETE", "/admin/tokens/{token_id}"): Op("Revoke an API token (refused everywhere at once)", "admin"),
    ("DELETE", "/me/sessions/{session}"): Op("Log out one of the account's sessions", "account"),
    ("GET", "/me/nominee"): Op("The nominee recorded for the account", "account"),
    ("PUT", "/me/nominee"): Op("Record or change the nominee", "account", nominee.NOMINEE,
                               {"name": "Ravi Verma", "relation": "son", "contact": "+919812345678"}),
    ("DELETE", "/me/nominee"): Op("Remove the nominee", "account"),
    ("POST", "/t/{token}/withdraw"): Op("A walk-in deletes their name and contact (keeps the place)", "token",
                                        EMPTY, {}, limited=True),
}

_PARAM = re.compile(r"{([^}:]+)(?::([^}]+))?}")


def route_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, dict[str, str]]]:
    """``(method, path, {param: converter})`` of every HTTP route, in table order."""
    out: list[tuple[str, str, dict[str, str]]] = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        params = {m[1]: m[2] or "str" for m in _PARAM.finditer(route.path)}
        path = _PARAM.sub(lambda m: "{" + m[1] + "}", route.path)
        out.extend((method, path, params) for method in METHODS if method in (route.methods or ()))
    return out


def _error(description: str) -> Json:
    error = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": error}}}


ERRORS = {
    "400": "Malformed JSON (code bad_json)",
    "401": "No or invalid credentials",
    "403": "Not allowed: role, queue, or missing X-CSRF-Token on a cookie write",
    "404": "Unknown resource",
    "409": "State conflict, e.g. an illegal ticket transition",
    "408": "The body took too long to arrive (server.body_timeout_s)",
    "413": "Body too large",
    "415": "A body not sent as Content-Type: application/json",
    "421": "A write sent to a --role hub process",
    "422": "Invalid or unknown field (the message names it)",
    "429": "Rate limited (see Retry-After)",
}


def _security(op: Op, method: str) -> list[Json]:
    cookie: Json = {"session": [], "csrf": []} if method in WRITES else {"session": []}
    if op.who in ("public", "token"):
        return []
    if op.who == "account":
        return [cookie]
    return [cookie, {"bearer": []}]


def _operation(method: str, path: str, params: dict[str, str], op: Op) -> Json:
    errors = ["404"] if op.who == "token" or params else []
    if op.who not in ("public", "token"):
        errors += ["401", "403"]
    if op.body is not None:
        errors += ["400", "413", "422"]
    if method in WRITES:
        errors += ["409", "421"]
    if op.limited:
        errors.append("429")
    role = f" Who: {op.who}." if op.who in (*STAFF_ROLES, "account or reception") else ""
    out: Json = {
        "summary": op.summary,
        "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path).rstrip('_')}",
        "tags": [path.strip("/").split("/")[0]],
        "description": op.summary + "." + role,
        "security": _security(op, method),
        "parameters": [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "integer"} if conv == "int" else {"type": "string"}}
            for name, conv in params.items()
        ] + [{"name": name, "in": where, "required": False, "description": text, "schema": {"type": kind}}
             for name, where, kind, text in op.params],
        "responses": {
            str(op.status): {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
            **{code: {"$ref": f"#/components/responses/E{code}"} for code in sorted(set(errors))},
        },
    }
    if op.body is not None:
        media: Json = {"schema": {"$ref": f"#/components/schemas/{schema_name(op.body)}"}}
        if op.example is not None:
            media["example"] = op.example
        out["requestBody"] = {"required": any(f.required for f in op.body.fields.values()),
                              "content": {"application/json": media}}
    return out


def schema_name(schema: Schema) -> str:
    for name, known in SCHEMAS.items():
        if known is schema:
            return name
    raise KeyError("a body schema missing from openapi.SCHEMAS")


def document(api_routes: Iterable[BaseRoute]) -> Json:
    """The whole document for the routes mounted at ``/api/v1``. A route without an entry in
    :data:`OPERATIONS` is left out with a warning (``tests/test_openapi.py`` fails on it)."""
    paths: dict[str, Json] = {}
    for method, path, params in route_operations(api_routes):
        op = OPERATIONS.get((method, path))
        if op is None:
            log.warning("%s %s has no entry in openapi.OPERATIONS: left out of the document", method, path)
            continue
        paths.setdefault(PREFIX + path, {})[method.lower()] = _operation(method, path, params, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "qtraq-live API", "version": __version__,
                 "description": "Live clinic queues. Errors: {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
                    "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string", "pattern": "^[a-z0-9_]+$"}, "message": {"type": "string"}}}}},
                **{name: schema.json_schema() for name, schema in SCHEMAS.items()},
            },
            "responses": {f"E{code}": _error(text) for code, text in ERRORS.items()},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                            "description": "Set by /auth/login (staff) or /auth/account-login (account)"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "The csrf_token from login; required on cookie-authenticated writes"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "Staff API token (qtraq-live token create)"},
            },
        },
    }
