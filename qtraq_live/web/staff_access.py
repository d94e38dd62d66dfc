"""Withdrawing staff access: disable or enable a user, reset a password, change a role, end a
user's sessions, list and revoke API tokens.

Each change writes the SQLite record and its Redis mirror in one step (as ``record/access.py`` does)
and announces itself on ``qt:credentials:changed``, so every process drops the credentials it
has cached at once: the change holds everywhere from the moment the call returns. The API
(``api/admin_staff.py``) and the CLI (``qtraq-live user disable|enable|passwd|role``,
``token list|revoke``) both come here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..errors import Invalid, NotFound
from ..record import access
from . import auth

if TYPE_CHECKING:
    from ..record.store import Store

log = logging.getLogger(__name__)

Json = dict[str, Any]


async def find_user(store: Store, who: str | int) -> Json:
    """A user by id or username (404 when unknown)."""
    if isinstance(who, int) or (isinstance(who, str) and who.isdigit()):
        row = await store.fetchone("SELECT * FROM users WHERE id = ?", (int(who),))
    else:
        row = await store.fetchone("SELECT * FROM users WHERE username = ?", (str(who).lower(),))
    if row is None:
        raise NotFound(f"unknown user {who}")
    return dict(row)


def user_view(row: Json) -> Json:
    return {"id": row["id"], "username": row["username"], "role": row["role"],
            "queues": json.loads(row["queues"] or "[]"), "disabled": bool(row["disabled"]),
            "created_at": row["created_at"]}


async def _mirror(store: Store, redis: aioredis.Redis, uid: int) -> Json:
    """Rewrite the user's mirror hash from the record (inside the caller's transaction)."""
    row = await store.fetchone("SELECT * FROM users WHERE id = ?", (uid,))
    assert row is not None  # the caller just found or wrote it
    await redis.hset(keys.user(uid), mapping=access.user_mapping(
        uid, row["username"], row["role"], json.loads(row["queues"] or "[]"), bool(row["disabled"])))
    return dict(row)


async def set_disabled(store: Store, redis: aioredis.Redis, who: str | int, disabled: bool) -> Json:
    """Disable (every session and token refused at once, sessions ended) or enable a user."""
    user = await find_user(store, who)
    async with store.transaction() as db:
        await db.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user["id"]))
        row = await _mirror(db, redis, user["id"])
    if disabled:
        await auth.end_sessions_of(redis, "staff", user["id"])
    await redis.publish(keys.CREDENTIALS_CHANGED, "user")
    log.info("user id=%s %s", user["id"], "disabled" if disabled else "enabled")
    return user_view(row)


async def set_password(store: Store, redis: aioredis.Redis, who: str | int, password: str) -> Json:
    """Reset a password (strength-checked); the user's sessions end, so whoever held the old
    password is logged out everywhere."""
    user = await find_user(store, who)
    access.check_password(password, user["username"])
    password_hash = await asyncio.to_thread(access.hasher.hash, password)
    async with store.transaction() as db:
        await db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user["id"]))
    await auth.end_sessions_of(redis, "staff", user["id"])
    log.info("user id=%s password reset", user["id"])
    return user_view(user)


async def set_role(store: Store, redis: aioredis.Redis, who: str | int, role: str,
                   queues: Iterable[str] = ()) -> Json:
    """Change a user's role (and a doctor's queues); effective on the next request everywhere."""
    user = await find_user(store, who)
    if role not in access.ROLES:
        raise Invalid("role", "must be one of " + ", ".join(access.ROLES))
    queue_ids = sorted(set(queues))
    for q in queue_ids:
        if not access.QUEUE_ID.match(q):
            raise Invalid("queues", f"not a queue id: {q!r}")
    if role == "doctor" and not queue_ids:
        raise Invalid("queues", "a doctor needs at least one queue")
    if role != "doctor" and queue_ids:
        raise Invalid("queues", "only a doctor is bound to queues")
    async with store.transaction() as db:
        await db.execute("UPDATE users SET role = ?, queues = ? WHERE id = ?",
                         (role, json.dumps(queue_ids), user["id"]))
        row = await _mirror(db, redis, user["id"])
    await redis.publish(keys.CREDENTIALS_CHANGED, "user")
    log.info("user id=%s role set to %s", user["id"], role)
    return user_view(row)


async def end_sessions(store: Store, redis: aioredis.Redis, who: str | int) -> int:
    """End every session of a user (their tokens stay: revoke those one by one)."""
    user = await find_user(store, who)
    ended = await auth.end_sessions_of(redis, "staff", user["id"])
    log.info("user id=%s: %d sessions ended", user["id"], ended)
    return ended


async def list_tokens(store: Store, who: str | int | None = None) -> list[Json]:
    """API tokens (never the secret): id, user, scope, created, expiry, revoked."""
    where, params = "", ()
    if who is not None:
        where, params = " WHERE t.user_id = ?", (int((await find_user(store, who))["id"]),)
    rows = await store.fetchall(
        "SELECT t.id, u.username, t.created_at, t.revoked_at, l.scope, l.expires_at FROM api_tokens t"
        " JOIN users u ON u.id = t.user_id LEFT JOIN api_token_limits l ON l.token_id = t.id"
        f"{where} ORDER BY t.id", params)
    now = time.time()
    return [{"id": r["id"], "username": r["username"], "scope": r["scope"] or "", "created_at": r["created_at"],
             "expires_at": r["expires_at"], "revoked_at": r["revoked_at"],
             "active": r["revoked_at"] is None and (r["expires_at"] is None or r["expires_at"] > now)}
            for r in rows]


async def revoke_token(store: Store, redis: aioredis.Redis, token_or_id: str | int) -> Json:
    """Revoke an API token by its id or by the token itself; refused everywhere at once."""
    text = str(token_or_id)
    column, value = ("id", int(text)) if text.isdigit() else ("token_hash", keys.secret_hash(text))
    row = await store.fetchone(f"SELECT id, token_hash, revoked_at FROM api_tokens WHERE {column} = ?", (value,))
    if row is None:
        raise NotFound("unknown API token")
    async with store.transaction() as db:
        await db.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                         (access.utc_now(), row["id"]))
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.api_token_by_hash(row["token_hash"]))
            pipe.publish(keys.CREDENTIALS_CHANGED, "token")
            await pipe.execute()
    log.info("API token id=%s revoked", row["id"])
    return {"id": row["id"], "revoked": True}
