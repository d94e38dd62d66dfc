"""Staff access records: users, API tokens, display keys, the audit log.

SQLite holds the record; Redis holds the mirror every process (hubs included) reads per
request: ``qt:user:{id}``, ``qt:apitok:{sha256}``, ``qt:dk:{sha256}``, ``qt:dkeys:{clinic}``.
Each write changes the mirror inside the SQLite transaction, so a Redis failure rolls the
row back and the two never disagree. Only the primary (and the CLI) calls these.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from zxcvbn import zxcvbn

from ..accounts.passwords import common_passwords
from ..engine import live_reads
from ..engine import redis_keys as keys
from ..errors import Conflict, Invalid, NotFound
from ..validation import NAME_MAX

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

ROLES = ("doctor", "reception", "admin")  # each includes the powers of those before it
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
QUEUE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
# zxcvbn's 0-4 guessability score a staff password must reach: 3 is "safely unguessable" for an
# online attack (~10^8 guesses); 'password', '12345678', 'Welcome@123' score 0-2.
STAFF_MIN_SCORE = 3
SCORED_CHARS = 100  # zxcvbn's cost grows with length; the first 100 characters decide
MIRROR_PATTERNS = (keys.user("*"), keys.api_token_by_hash("*"), keys.display_key_by_hash("*"),
                   keys.display_keys_of("*"))

hasher = PasswordHasher()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_secret() -> str:
    """An API token or display key: 256 random bits, URL-safe base64 (43 chars)."""
    return secrets.token_urlsafe(32)


def normalize_username(username: Any) -> str:
    if not isinstance(username, str) or not USERNAME.match(username.lower()):
        raise Invalid("username", "must be 2-40 letters, digits, '.', '_' or '-'")
    return username.lower()


def check_password(password: Any, username: str = "") -> str:
    """A staff password: 8-256 characters, not a common password, and not guessable from the
    patterns attackers try first (words with digits, keyboard runs, dates, the username)."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise Invalid("password", f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    guessable = zxcvbn(password[:SCORED_CHARS], user_inputs=[username, "qtraq", "clinic"])["score"] < STAFF_MIN_SCORE
    if password.lower() in common_passwords() or guessable:
        raise Invalid("password", "is too easy to guess (a common password, word pattern or the username); "
                      "choose a longer passphrase", code="weak_password")
    return password


def user_mapping(uid: int, username: str, role: str, queues: Iterable[str], disabled: bool) -> dict[Any, str]:
    return {"id": str(uid), "username": username, "role": role,
            "queues": json.dumps(list(queues)), "disabled": "1" if disabled else "0"}


async def create_user(store: Store, redis: aioredis.Redis, username: str, password: str, role: str,
                      queues: Iterable[str] = ()) -> int:
    """A staff user with an argon2 password hash; ``queues`` limit what a doctor may act on."""
    username = normalize_username(username)
    check_password(password, username)
    if role not in ROLES:
        raise Invalid("role", "must be one of " + ", ".join(ROLES))
    queue_ids = sorted(set(queues))
    for q in queue_ids:
        if not QUEUE_ID.match(q):
            raise Invalid("queue", f"not a queue id: {q!r}")
    password_hash = await asyncio.to_thread(hasher.hash, password)  # ~50 ms of CPU: off the loop
    async with store.transaction() as db:
        if await db.fetchone("SELECT 1 FROM users WHERE username = ?", (username,)):
            raise Conflict(f"user {username} already exists", code="already_exists")
        written = await db.execute(
            "INSERT INTO users (username, password_hash, role, queues, created_at) VALUES (?, ?, ?, ?, ?)",
            (username, password_hash, role, json.dumps(queue_ids), utc_now()))
        uid = int(written.lastrowid or 0)
        await redis.hset(keys.user(uid), mapping=user_mapping(uid, username, role, queue_ids, False))
    log.info("created user id=%s role=%s", uid, role)
    return uid


async def login_record(store: Store, username: str) -> dict[str, Any] | None:
    """``{id, password_hash, disabled}`` of a username, for checking a login."""
    row = await store.fetchone("SELECT id, password_hash, disabled FROM users WHERE username = ?",
                               (username.lower(),))
    return None if row is None else {"id": int(row["id"]), "password_hash": row["password_hash"],
                                     "disabled": bool(row["disabled"])}


async def update_password_hash(store: Store, uid: int, password_hash: str) -> None:
    """Store a rehash (argon2 parameters raised since the password was set)."""
    async with store.transaction() as db:
        await db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, uid))


TOKEN_SCOPES = ("", "press")  # "press": a desk button, calls the next patient only (auth.SCOPE_ACTIONS)


def token_value(uid: int | str, scope: str = "", expires_at: int | None = None) -> str:
    """An API token's Redis mirror value: the user id, with scope and expiry when limited
    (read by ``lua/staff.lua``)."""
    return str(uid) if not scope and not expires_at else f"{uid}:{scope}:{expires_at or 0}"


async def create_api_token(store: Store, redis: aioredis.Redis, username: str, scope: str = "",
                           expires_at: int | None = None) -> str:
    """A bearer token for scripts and kiosks, optionally limited to a scope and expiring at
    ``expires_at`` (epoch s). Returned once; only its hash is kept."""
    row = await store.fetchone("SELECT id FROM users WHERE username = ?", (normalize_username(username),))
    if row is None:
        raise NotFound(f"unknown user {username}")
    if scope not in TOKEN_SCOPES:
        raise Invalid("scope", "must be one of " + ", ".join(repr(s) for s in TOKEN_SCOPES))
    token = new_secret()
    digest = keys.secret_hash(token)
    async with store.transaction() as db:
        written = await db.execute("INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
                                   (int(row["id"]), digest, utc_now()))
        if scope or expires_at:
            await db.execute("INSERT INTO api_token_limits (token_id, scope, expires_at) VALUES (?, ?, ?)",
                             (written.lastrowid, scope, expires_at))
        await redis.set(keys.api_token(token), token_value(row["id"], scope, expires_at),
                        exat=expires_at or None)
    log.info("created API token for user id=%s", row["id"])
    return token


async def create_display_key(store: Store, redis: aioredis.Redis, clinic_id: str, label: str = "") -> str:
    """A key that lets one screen watch one clinic. Returned once; only its hash is kept."""
    if not await live_reads.clinic_exists(redis, clinic_id):
        raise NotFound(f"unknown clinic {clinic_id}")
    if not isinstance(label, str) or len(label) > NAME_MAX:
        raise Invalid("label", f"must be at most {NAME_MAX} characters")
    secret = new_secret()
    digest = keys.secret_hash(secret)
    async with store.transaction() as db:
        await db.execute("INSERT INTO display_keys (clinic, key_hash, label, created_at) VALUES (?, ?, ?, ?)",
                         (clinic_id, digest, label, utc_now()))
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.display_key(secret), clinic_id)
            pipe.sadd(keys.display_keys_of(clinic_id), digest)
            await pipe.execute()
    log.info("created display key for clinic %s", clinic_id)
    return secret


async def revoke_display_key(store: Store, redis: aioredis.Redis, clinic_id: str, key_id: int) -> None:
    row = await store.fetchone(
        "SELECT key_hash FROM display_keys WHERE id = ? AND clinic = ? AND revoked_at IS NULL", (key_id, clinic_id))
    if row is None:
        raise NotFound(f"no active display key {key_id} for clinic {clinic_id}")
    async with store.transaction() as db:
        await db.execute("UPDATE display_keys SET revoked_at = ? WHERE id = ?", (utc_now(), key_id))
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.display_key_by_hash(row["key_hash"]))
            pipe.srem(keys.display_keys_of(clinic_id), row["key_hash"])
            await pipe.execute()
    log.info("revoked display key id=%s of clinic %s", key_id, clinic_id)


async def mirror_access(store: Store, redis: aioredis.Redis) -> None:
    """Rewrite every access mirror key from SQLite in one MULTI (``qtraq-live rebuild``)."""
    stale: list[str] = []
    for pattern in MIRROR_PATTERNS:
        stale.extend([k async for k in redis.scan_iter(match=pattern, count=500)])
    users = await store.fetchall("SELECT id, username, role, queues, disabled FROM users", ())
    tokens = await store.fetchall(
        "SELECT t.user_id, t.token_hash, l.scope, l.expires_at FROM api_tokens t"
        " LEFT JOIN api_token_limits l ON l.token_id = t.id WHERE t.revoked_at IS NULL"
        " AND (l.expires_at IS NULL OR l.expires_at > strftime('%s', 'now'))", ())
    dkeys = await store.fetchall("SELECT clinic, key_hash FROM display_keys WHERE revoked_at IS NULL", ())
    async with redis.pipeline(transaction=True) as pipe:
        if stale:
            pipe.delete(*stale)
        for u in users:
            pipe.hset(keys.user(u["id"]), mapping=user_mapping(
                int(u["id"]), u["username"], u["role"], json.loads(u["queues"]), bool(u["disabled"])))
        for t in tokens:
            pipe.set(keys.api_token_by_hash(t["token_hash"]), token_value(t["user_id"], t["scope"] or "",
                                                                          t["expires_at"]),
                     exat=t["expires_at"] or None)
        for d in dkeys:
            pipe.set(keys.display_key_by_hash(d["key_hash"]), d["clinic"])
            pipe.sadd(keys.display_keys_of(d["clinic"]), d["key_hash"])
        pipe.publish(keys.CREDENTIALS_CHANGED, "mirror")  # serving processes drop cached credentials
        await pipe.execute()
    log.info("mirrored access: %d users, %d API tokens, %d display keys", len(users), len(tokens), len(dkeys))

