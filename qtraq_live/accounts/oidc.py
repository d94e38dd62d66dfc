"""Sign-in with an OpenID Connect provider: the authorization code flow with PKCE (S256).

The provider is found by discovery (``{issuer}/.well-known/openid-configuration``); the
``id_token`` is checked against the provider's published keys (``jwks_uri``): signature,
issuer, audience, expiry and the nonce of this sign-in. An identity signs in to the account
it was linked to; the first time, it is linked only to an account whose email is verified here
and equals the provider's *verified* email (``email_verified: true``) — an unverified address
on either side could otherwise hand someone else's account to whoever controls the login.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import redis.asyncio as aioredis

from ..config import Settings
from ..engine import redis_keys as keys
from ..record.store import Store

log = logging.getLogger(__name__)

Json = dict[str, Any]
PENDING_S = 600  # a sign-in must come back within 10 minutes
DISCOVERY_TTL_S = 3600
ALGORITHMS = ["RS256", "ES256", "PS256"]
TIMEOUT_S = 10.0
_discovered: dict[str, tuple[float, Json]] = {}


class OidcFailed(Exception):
    """A sign-in that cannot complete; ``reason`` is a short code for the portal and the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool


def enabled(settings: Settings) -> bool:
    return bool(settings["accounts.oidc.issuer"] and settings["accounts.oidc.client_id"])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _state_key(state: str) -> str:
    return keys.oidc_state(hashlib.sha256(state.encode()).hexdigest())


async def _get_json(client: httpx.AsyncClient, url: str) -> Json:
    try:
        r = await client.get(url)
        r.raise_for_status()
        out = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("oidc: %s unreachable or not JSON: %s", url, type(exc).__name__)
        raise OidcFailed("provider_unreachable") from None
    if not isinstance(out, dict):
        raise OidcFailed("provider_unreachable")
    return out


async def discover(client: httpx.AsyncClient, issuer: str) -> Json:
    """The provider's metadata (cached for an hour); its ``issuer`` must be ours exactly."""
    cached = _discovered.get(issuer)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    meta = await _get_json(client, issuer.rstrip("/") + "/.well-known/openid-configuration")
    if meta.get("issuer") != issuer or not all(meta.get(k) for k in
                                               ("authorization_endpoint", "token_endpoint", "jwks_uri")):
        raise OidcFailed("provider_misconfigured")
    _discovered[issuer] = (time.monotonic() + DISCOVERY_TTL_S, meta)
    return meta


async def begin(client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings,
                redirect_uri: str) -> tuple[str, str]:
    """Start a sign-in: returns ``(state, authorization URL)``. The nonce and the PKCE verifier
    wait in Redis under a hash of the state, for one use."""
    meta = await discover(client, settings["accounts.oidc.issuer"])
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    await redis.set(_state_key(state), json.dumps({"nonce": nonce, "verifier": verifier}), ex=PENDING_S)
    query = urlencode({
        "response_type": "code", "client_id": settings["accounts.oidc.client_id"], "redirect_uri": redirect_uri,
        "scope": "openid email", "state": state, "nonce": nonce,
        "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256",
    })
    return state, f"{meta['authorization_endpoint']}?{query}"


async def finish(client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings, state: str, code: str,
                 redirect_uri: str) -> Identity:
    """Complete a sign-in: exchange the code (with the PKCE verifier) and check the id_token."""
    raw = await redis.getdel(_state_key(state))
    if raw is None:
        raise OidcFailed("expired")
    pending = json.loads(raw)
    issuer, client_id = settings["accounts.oidc.issuer"], settings["accounts.oidc.client_id"]
    meta = await discover(client, issuer)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": pending["verifier"], "client_id": client_id}
    secret = settings["accounts.oidc.client_secret"]
    methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth = None
    if secret and "client_secret_basic" in methods:
        auth = httpx.BasicAuth(client_id, secret)
    elif secret:
        form["client_secret"] = secret
    try:
        r = await client.post(meta["token_endpoint"], data=form, auth=auth)
    except httpx.HTTPError as exc:
        log.warning("oidc: token endpoint unreachable: %s", type(exc).__name__)
        raise OidcFailed("provider_unreachable") from None
    if r.status_code != 200:
        log.warning("oidc: token endpoint answered %d", r.status_code)
        raise OidcFailed("code_refused")
    try:
        id_token = r.json()["id_token"]
    except (ValueError, KeyError, TypeError):
        raise OidcFailed("no_id_token") from None
    claims = await _verify(client, meta, id_token, issuer, client_id)
    if not secrets.compare_digest(str(claims.get("nonce", "")), pending["nonce"]):
        raise OidcFailed("bad_nonce")
    email = claims.get("email")
    return Identity(issuer, str(claims["sub"]), email.lower() if isinstance(email, str) else None,
                    claims.get("email_verified") is True)


async def _verify(client: httpx.AsyncClient, meta: Json, id_token: str, issuer: str, client_id: str) -> Json:
    try:
        header = jwt.get_unverified_header(id_token)
        jwks = jwt.PyJWKSet.from_dict(await _get_json(client, meta["jwks_uri"]))
        key = next((k for k in jwks.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise OidcFailed("unknown_key")
        claims: Json = jwt.decode(id_token, key=key, algorithms=ALGORITHMS, audience=client_id, issuer=issuer,
                                  options={"require": ["exp", "iat", "iss", "aud", "sub"]}, leeway=60)
    except jwt.PyJWTError as exc:
        log.warning("oidc: id_token refused: %s", type(exc).__name__)
        raise OidcFailed("bad_id_token") from None
    return claims


async def account_for(store: Store, who: Identity, now_ms: int) -> int:
    """The account this identity signs in to, linking it on first use (see module doc)."""
    linked = await store.fetchval("SELECT account_id FROM account_oidc WHERE issuer = ? AND subject = ?",
                                  (who.issuer, who.subject))
    if linked is not None:
        return int(linked)
    if not who.email or not who.email_verified:
        raise OidcFailed("email_not_verified")
    async with store.transaction() as db:
        account_id = await db.fetchval("SELECT id FROM accounts WHERE email = ? AND email_verified = 1", (who.email,))
        if account_id is None:
            raise OidcFailed("no_account")
        await db.execute("INSERT INTO account_oidc (issuer, subject, account_id, linked_at) VALUES (?,?,?,?)",
                         (who.issuer, who.subject, account_id, now_ms))
    log.info("account %d linked to an OpenID Connect identity", account_id)
    return int(account_id)
