"""Who is asking: login sessions in Redis, bearer API tokens, CSRF, staff roles.

Everything a request needs to authenticate lives in Redis (sessions, the user mirror, token
hashes), so a ``--role hub`` process checks credentials without SQLite. Sessions are
``qt:sess:{sha256(sid)}`` hashes ``{kind, uid, csrf, ip, ua, created}``: the cookie holds
the only copy of the session id. Staff roles nest: admin ⊃ reception ⊃ doctor; a doctor
acts only on the queues named for them, and only to call and finish patients.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeGuard, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from argon2.exceptions import InvalidHashError, VerificationError
from redis.exceptions import NoScriptError
from starlette.requests import Request
from starlette.responses import Response

from ..engine import redis_keys as keys
from ..errors import Forbidden, RateLimited, Unauthorized
from ..record import access
from ..runtime.redis_conn import UNREACHABLE
from .request import client_ip

log = logging.getLogger(__name__)

SESSION_COOKIE = "qtraq_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RANK = {role: i for i, role in enumerate(access.ROLES)}
DOCTOR_ACTIONS = frozenset({"next", "call", "recall", "skip", "done", "no_show", "serve", "close_counter"})
# What an API token with a scope may do: "press" is a desk button (call the next patient).
SCOPE_ACTIONS = {"press": frozenset({"next"})}

# Login attempts: a few are free, then a lockout of 30 s that doubles with each further attempt
# (up to 15 min) while they keep coming within the window. Counted per address and per address
# with the username, never per username alone: an attacker elsewhere cannot lock a person out.
FAIL_WINDOW_S = 900
FREE_FAILS = {"ipuser": 5, "ip": 20}
FIRST_LOCK_S = 30
MAX_LOCK_S = 900


@dataclass(frozen=True)
class Staff:
    id: int
    username: str
    role: str
    queues: tuple[str, ...]
    via: str  # "session" or "token"
    scope: str = ""  # an API token limited to some actions (SCOPE_ACTIONS); "" = the role's all

    @property
    def actor(self) -> str:
        return f"user:{self.id}"

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def may(self, action: str, queue_id: str) -> bool:
        """May this user do ``action`` (``next``, ``issue``, ``no_show``…) on that queue?"""
        if self.scope and action not in SCOPE_ACTIONS.get(self.scope, ()):
            return False
        if self.at_least("reception"):
            return True
        return action in DOCTOR_ACTIONS and queue_id in self.queues

    def reads(self, queue_id: str) -> bool:
        """May this user see that queue's tickets? A doctor only their own queues'."""
        return self.at_least("reception") or queue_id in self.queues

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": self.role, "queues": list(self.queues)}


# -- sessions (staff and account) ---------------------------------------------------------


async def start_session(request: Request, kind: str, uid: int | str) -> tuple[str, str]:
    """A new session for ``uid``; returns ``(sid, csrf_token)``. Set the cookie with
    :func:`set_session_cookie`. A fresh id each login, so a planted cookie never gains rights."""
    settings = request.app.state.settings
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    key = keys.session(sid)
    async with request.app.state.redis.pipeline(transaction=True) as pipe:
        now = str(int(time.time()))
        pipe.hset(key, mapping={"kind": kind, "uid": str(uid), "csrf": csrf, "ip": client_ip(request),
                                "ua": request.headers.get("user-agent", "")[:256], "created": now, "seen": now})
        pipe.expire(key, settings["security.session_hours"] * 3600)
        await pipe.execute()
    return sid, csrf


def set_session_cookie(response: Response, request: Request, sid: str) -> None:
    settings = request.app.state.settings
    response.set_cookie(SESSION_COOKIE, sid, max_age=settings["security.session_hours"] * 3600, path="/",
                        httponly=True, samesite="lax",
                        secure=request.url.scheme == "https" or settings.production)


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


async def load_session(redis: aioredis.Redis, sid: str | None) -> dict[str, str] | None:
    if not sid or len(sid) > 128:
        return None
    found = cast(dict[str, str], await redis.hgetall(keys.session(sid)))
    return found or None


async def end_sessions_of(redis: aioredis.Redis, kind: str, uid: int | str, keep: str | None = None) -> int:
    """End every session of one staff user or account (but ``keep``, a session cookie's id),
    and tell every process to drop cached credentials. Sessions are keyed by a hash of their
    id only, so they are found by scanning (rare: erasure, access withdrawal, password change)."""
    kept = keys.session(keep) if keep else None
    ended = 0
    async for key in redis.scan_iter(match=keys.SESSIONS_PATTERN, count=500):
        if key != kept and await redis.hmget(key, "kind", "uid") == [kind, str(uid)]:
            ended += await redis.delete(key)
    await redis.publish(keys.CREDENTIALS_CHANGED, "sessions")
    return ended


async def end_session(redis: aioredis.Redis, sid: str | None) -> None:
    """Delete the session, and tell every process to drop the credentials it has cached."""
    if sid:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.session(sid))
            pipe.publish(keys.CREDENTIALS_CHANGED, "session")
            await pipe.execute()


async def current_session(request: Request) -> dict[str, str] | None:
    """The session of the request's cookie (any kind), or None (also once it sat idle too long)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    session = await load_session(request.app.state.redis, cookie)
    if session is not None and not await still_active(request, cookie, session):
        return None
    return session


IDLE_TOUCH_S = 60  # "last seen" is written at most once a minute per session, not on every request


async def still_active(request: Request, cookie: str | None, session: dict[str, str]) -> bool:
    """False (and the session ended) when it went unused for ``security.idle_minutes``;
    otherwise note that it was used now."""
    redis = request.app.state.redis
    now = int(time.time())
    seen = int(session.get("seen") or session.get("created") or now)
    if now - seen > request.app.state.settings["security.idle_minutes"] * 60:
        await end_session(redis, cookie)
        return False
    if now - seen >= IDLE_TOUCH_S and cookie:
        await redis.hset(keys.session(cookie), "seen", str(now))
    return True


def check_csrf(request: Request, session: dict[str, str]) -> None:
    """Cookie-authenticated writes must come from our pages: same origin and the session's
    CSRF token in ``X-CSRF-Token`` (compared in constant time)."""
    if request.method in SAFE_METHODS:
        return
    check_same_site(request)
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.get("csrf", "").encode()):
        raise Forbidden("missing or wrong X-CSRF-Token header", code="csrf_failed")


def check_same_site(request: Request) -> None:
    """A write that starts or uses a session must come from our own pages: a browser's
    ``Origin`` names this host (or a listed origin) and ``Sec-Fetch-Site`` is not
    ``cross-site``. Requests without either (scripts, curl) pass: they carry no victim's
    cookies. Login and registration check this too (no login CSRF into an attacker's account)."""
    origin = request.headers.get("origin")
    if origin is not None and not origin_allowed(request, origin):
        raise Forbidden("origin not allowed", code="origin_not_allowed")
    listed = origin is not None and origin in request.app.state.settings["security.allowed_origins"]
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site" and not listed:
        raise Forbidden("cross-site request not allowed", code="origin_not_allowed")


def origin_allowed(request: Request, origin: str) -> bool:
    """Same host as the request, or listed in ``security.allowed_origins``."""
    if origin in request.app.state.settings["security.allowed_origins"]:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


# -- staff ----------------------------------------------------------------------------------


STAFF_SCRIPT = resources.files("qtraq_live").joinpath("lua/staff.lua").read_text()
STAFF_SCRIPT_SHA = hashlib.sha1(STAFF_SCRIPT.encode()).hexdigest()


async def _lookup(redis: aioredis.Redis, key: str, via: str) -> tuple[dict[str, str], dict[str, str]]:
    """(session fields, user fields) of a credential key, one round trip (``lua/staff.lua``)."""
    args = (1, key, via, keys.user(""))
    try:
        reply = await redis.evalsha(STAFF_SCRIPT_SHA, *args)
    except NoScriptError:  # a fresh or flushed Redis: EVAL loads it for the next time
        reply = await redis.eval(STAFF_SCRIPT, *args)
    session, user = reply
    return _pairs(session), _pairs(user)


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2]))


Found = tuple[dict[str, str], dict[str, str]]  # (session fields, user fields) of a credential


class CredentialCache:
    """Staff credentials found in the last ``ttl_s`` seconds, so a busy desk's presses skip
    the lookup's round trip (its share of a press's CPU: docs/benchmarks.md).

    Only found staff credentials are kept (a new token or login works at once). Every process
    drops all it keeps when any process publishes on ``qt:credentials:changed`` (a logout, an
    access rebuild), so an ended session is refused everywhere at once; what nobody announces
    (a session's own expiry, a flushed Redis) is noticed within ``ttl_s``. While the
    subscription is not confirmed, nothing is kept. ``ttl_s`` 0 turns the cache off.
    """

    MAX_ENTRIES = 10_000
    RETRY_S = 1.0

    def __init__(self, redis: aioredis.Redis, ttl_s: float) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.live = False  # subscribed: invalidations reach us
        self._entries: dict[str, tuple[float, Found]] = {}
        self._generation = 0  # +1 on every drop: a lookup that began before it keeps nothing

    async def lookup(self, key: str, via: str) -> Found:
        """(session fields, user fields) of a credential key, from the cache or Redis."""
        hit = self._entries.get(key)
        if hit is not None and self.live and hit[0] > time.monotonic():
            return hit[1]
        generation = self._generation
        found = await _lookup(self.redis, key, via)
        session, user = found
        if user and (via == "token" or session.get("kind") == "staff") and self.live and self.ttl_s > 0 \
                and generation == self._generation:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, found)
        return found

    def forget(self) -> None:
        self._entries.clear()
        self._generation += 1

    async def watch(self) -> None:
        """Run for the process's life: drop everything on each announcement, and while the
        subscription is down (the announcements in between are lost)."""
        if self.ttl_s <= 0:
            return
        warned = False  # one line per outage, not one per retry
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.CREDENTIALS_CHANGED)
                async for message in pubsub.listen():
                    self.forget()
                    if message["type"] == "subscribe":
                        self.live, warned = True, False
            except UNREACHABLE:
                if not warned:
                    log.warning("credential invalidations unreachable; not caching credentials until back")
                warned = True
            except Exception:  # whatever it was, keep retrying: without the subscription nothing is kept
                log.error("credential invalidations failed; not caching credentials until back", exc_info=True)
            finally:
                self.live = False
                self.forget()
                with contextlib.suppress(*UNREACHABLE):
                    await pubsub.aclose()
            await asyncio.sleep(self.RETRY_S)


def _staff(u: dict[str, str], via: str, token: dict[str, str] | None = None) -> Staff | None:
    """The staff user of a mirrored user hash, or None when unknown or disabled (or, for an API
    token, expired: ``token`` holds its scope and expiry)."""
    if not u or u.get("disabled") == "1" or u.get("role") not in RANK:
        return None
    token = token or {}
    expires = int(token.get("expires") or 0)  # epoch s; 0: never
    if expires and expires <= time.time():
        return None
    return Staff(int(u["id"]), u["username"], u["role"], tuple(json.loads(u.get("queues") or "[]")), via,
                 token.get("scope", ""))


async def staff_user(redis: aioredis.Redis, uid: str | int, via: str) -> Staff | None:
    """The staff user from the Redis mirror, or None when unknown or disabled."""
    return _staff(cast(dict[str, str], await redis.hgetall(keys.user(uid))), via)


async def staff_session(redis: aioredis.Redis, cookie_value: str | None) -> tuple[dict[str, str], Staff] | None:
    """The staff session of a cookie and its user, or None (one round trip)."""
    if not _cookie_ok(cookie_value):
        return None
    return _session_staff(await _lookup(redis, keys.session(cookie_value), "session"))


def _cookie_ok(cookie_value: str | None) -> TypeGuard[str]:
    return cookie_value is not None and 0 < len(cookie_value) <= 128


def _session_staff(found: Found) -> tuple[dict[str, str], Staff] | None:
    session, u = found
    user = _staff(u, "session") if session.get("kind") == "staff" else None
    return None if user is None else (session, user)


async def session_from_cookie(redis: aioredis.Redis, cookie_value: str | None) -> dict[str, Any] | None:
    """The staff user ``{id, username, role, queues}`` of a session cookie, or None
    (used by the hub to authenticate the reception WebSocket)."""
    found = await staff_session(redis, cookie_value)
    return None if found is None else found[1].public()


async def authenticate_staff(request: Request) -> Staff:
    """The staff caller, by bearer token or by session cookie (with CSRF on writes)."""
    cached = request.scope.get("state", {}).get("staff")
    if isinstance(cached, Staff):
        return cached
    credentials: CredentialCache = request.app.state.credentials
    authorization = request.headers.get("authorization")
    user: Staff | None = None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <API token>'", code="invalid_token")
        scope, found_user = await credentials.lookup(keys.api_token(token.strip()), "token")
        user = _staff(found_user, "token", scope)
        if user is None:
            raise Unauthorized("invalid API token", code="invalid_token")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        found = None
        if _cookie_ok(cookie):
            found = _session_staff(await credentials.lookup(keys.session(cookie), "session"))
        if found is None or not await still_active(request, cookie, found[0]):
            raise Unauthorized("log in first", code="not_authenticated")
        session, user = found
        check_csrf(request, session)
    request.scope.setdefault("state", {})["staff"] = user
    return user


async def require_staff(request: Request, role: str = "doctor") -> Staff:
    user = await authenticate_staff(request)
    if user.scope:
        raise Forbidden(f"this API token may only {', '.join(sorted(SCOPE_ACTIONS.get(user.scope, ())))}",
                        code="token_scope")
    if not user.at_least(role):
        raise Forbidden(f"needs the {role} role", code="forbidden")
    return user


async def require_queue_action(request: Request, action: str, queue_id: str) -> Staff:
    """A staff user allowed to do ``action`` on ``queue_id`` (403 otherwise)."""
    user = await authenticate_staff(request)
    if not user.may(action, queue_id):
        raise Forbidden(f"not allowed to {action.replace('_', '-')} on this queue", code="forbidden")
    return user


# -- login ----------------------------------------------------------------------------------

_dummy_hash: str | None = None


def _dummy() -> str:
    """A hash to verify against for unknown usernames, so they take as long as known ones."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = access.hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


def _verify(password_hash: str, password: str) -> bool:
    try:
        return access.hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _limit_keys(username: str, ip: str) -> dict[str, str]:
    """Who a login attempt counts against: the address, and the address with the username
    (hashed in key names: no addresses or usernames in Redis key names)."""
    return {"ipuser": keys.secret_hash(f"{ip} {username.lower()}")[:32], "ip": keys.secret_hash(ip)[:32]}


ATTEMPT_SCRIPT = resources.files("qtraq_live").joinpath("lua/login_attempt.lua").read_text()


async def _count_attempt(redis: aioredis.Redis, who: dict[str, str]) -> None:
    """Count the attempt before its password is checked, atomically (``lua/login_attempt.lua``):
    429 with Retry-After while a lockout runs, so racing requests cannot all be evaluated."""
    key_list: list[str] = []
    for scope, ident in who.items():
        key_list += [keys.rate_limit(f"login-fail-{scope}", ident), keys.rate_limit(f"login-lock-{scope}", ident)]
    locked = int(await redis.eval(ATTEMPT_SCRIPT, len(key_list), *key_list, FAIL_WINDOW_S, FIRST_LOCK_S,
                                  MAX_LOCK_S, *(FREE_FAILS[scope] for scope in who)))
    if locked > 0:
        raise RateLimited(f"too many failed logins; retry in {locked} s", retry_after=locked)


async def login_staff(request: Request, username: str, password: str) -> Staff:
    """Check a staff login (locked out after repeated failures: 429 with Retry-After)."""
    redis, store = request.app.state.redis, request.app.state.store
    who = _limit_keys(username, client_ip(request))
    await _count_attempt(redis, who)
    record = await access.login_record(store, username)
    password_hash = record["password_hash"] if record else await asyncio.to_thread(_dummy)
    ok = await asyncio.to_thread(_verify, password_hash, password)
    user = await staff_user(redis, record["id"], "session") if ok and record and not record["disabled"] else None
    if user is None and ok and record and not record["disabled"]:
        log.warning("user id=%s has no Redis mirror: run `qtraq-live rebuild`", record["id"])
    if user is None:
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    await redis.delete(keys.rate_limit("login-fail-ipuser", who["ipuser"]),
                       keys.rate_limit("login-lock-ipuser", who["ipuser"]))
    if access.hasher.check_needs_rehash(password_hash):
        await access.update_password_hash(store, user.id, await asyncio.to_thread(access.hasher.hash, password))
    log.info("staff login user id=%s", user.id)
    return user
