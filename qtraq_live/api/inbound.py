"""Replies from patients: the SMS gateway's form post and the WhatsApp Cloud API webhook.

Both check the gateway's signature over the raw body before reading anything (401 otherwise)
and answer 404 while their secret is not configured. WhatsApp's ``GET`` is Meta's verify
handshake: ``hub.mode=subscribe`` with our verify token echoes ``hub.challenge``.

Rate limits: an SMS over the sender's limit answers 429 (the gateway may retry it later); a
WhatsApp message over it is acknowledged with 200 and dropped, since Meta retries anything
else for days and disables webhooks that keep failing.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import Forbidden, NotFound, RateLimited, Unauthorized
from ..inbound import payloads, replies, signatures
from ..web.responses import JSONResponse


async def sms(request: Request) -> Response:
    secret = request.app.state.settings["inbound.sms_secret"]
    if not secret:
        raise NotFound("inbound SMS is not configured")
    raw = await request.body()
    if not signatures.valid(secret, raw, request.headers.get("x-signature")):
        raise Unauthorized("missing or wrong X-Signature", code="bad_signature")
    msg = payloads.sms_message(raw, request.headers.get("content-type", ""))
    state = request.app.state
    outcome = await replies.handle(state.settings, state.redis, state.engine, state.store, msg)
    return JSONResponse({"outcome": outcome})


async def whatsapp_verify(request: Request) -> Response:
    token = request.app.state.settings["inbound.whatsapp_verify_token"]
    if not token:
        raise NotFound("the WhatsApp webhook is not configured")
    q = request.query_params
    given = q.get("hub.verify_token", "")
    if q.get("hub.mode") != "subscribe" or not hmac.compare_digest(given.encode(), token.encode()):
        raise Forbidden("wrong hub.mode or hub.verify_token", code="bad_verify_token")
    challenge = q.get("hub.challenge", "")
    if not challenge.isdigit() or len(challenge) > 64:  # Meta sends digits; echo nothing else
        raise Forbidden("hub.challenge must be digits", code="bad_challenge")
    return PlainTextResponse(challenge)


async def whatsapp(request: Request) -> Response:
    settings = request.app.state.settings
    if not settings["inbound.whatsapp_verify_token"] or not settings["inbound.whatsapp_app_secret"]:
        raise NotFound("the WhatsApp webhook is not configured")
    raw = await request.body()
    if not signatures.valid(settings["inbound.whatsapp_app_secret"], raw, request.headers.get("x-hub-signature-256")):
        raise Unauthorized("missing or wrong X-Hub-Signature-256", code="bad_signature")
    state = request.app.state
    outcomes = []
    for msg in payloads.whatsapp_messages(raw):
        try:
            outcomes.append(await replies.handle(settings, state.redis, state.engine, state.store, msg))
        except RateLimited:
            outcomes.append("rate_limited")
    return JSONResponse({"outcomes": outcomes})


routes: list[BaseRoute] = [
    Route("/inbound/sms", sms, methods=["POST"]),
    Route("/inbound/whatsapp", whatsapp_verify, methods=["GET"]),
    Route("/inbound/whatsapp", whatsapp, methods=["POST"], name="whatsapp_webhook"),
]
