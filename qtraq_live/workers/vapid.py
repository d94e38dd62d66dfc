"""The server's VAPID key pair for Web Push (RFC 8292): made on first start, kept in the data dir.

The primary creates ``DATA_DIR/vapid.json`` (mode 0600) once, and copies the pair into the
Redis hash ``qt:push:vapid`` at every start, so hubs (with their own data dir) can hand out the
public key and workers on other hosts can sign with the private one. Browsers bind a
subscription to the public key: replacing the pair silently ends every subscription, so it is
never regenerated while the file exists.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..config import Settings
from ..engine import redis_keys as keys
from ..errors import ConfigError
from ..runtime.redis_conn import UNREACHABLE

log = logging.getLogger(__name__)

FILE = "vapid.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_pair() -> dict[str, str]:
    """A P-256 pair: the public key as browsers take it (uncompressed point, URL-safe base64),
    the private one as PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return {"public_key": b64url(public), "private_pem": pem.decode()}


def load_or_create(data_dir: Path) -> dict[str, str]:
    """The pair from the data dir, made there first if absent (safe when processes race)."""
    path = data_dir / FILE
    if not path.exists():
        pair = _new_pair()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(pair, fh)
            return pair
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError as exc:
            raise ConfigError("notify.web_push", f"cannot write {path}: {exc.strerror}") from None
    pair = json.loads(path.read_text())
    if not isinstance(pair, dict) or not {"public_key", "private_pem"} <= set(pair):
        raise ConfigError("notify.web_push", f"{path} is not a VAPID key file (move it away to make a new pair)")
    return {"public_key": str(pair["public_key"]), "private_pem": str(pair["private_pem"])}


async def publish(client: aioredis.Redis, data_dir: Path) -> str:
    """Load (or make) the pair and share it through Redis; returns the public key."""
    pair = load_or_create(data_dir)
    await client.hset(keys.PUSH_VAPID, mapping=pair)  # type: ignore[arg-type]
    return pair["public_key"]


async def publish_at_start(client: aioredis.Redis, settings: Settings) -> None:
    """``publish`` for the primary's start-up: Redis down is a warning (the key endpoint
    publishes on first use), a data dir we cannot write is a ConfigError."""
    if not settings["notify.web_push"]:
        return
    try:
        await publish(client, settings.data_dir)
    except UNREACHABLE:
        log.warning("Redis unreachable at start; the VAPID key is published on first use")


async def public_key(client: aioredis.Redis) -> str | None:
    value: Any = await client.hget(keys.PUSH_VAPID, "public_key")
    return str(value) if value else None


def private_pem(conn: redis.Redis) -> bytes | None:
    """The private key for a worker (sync client), or None before the primary has started."""
    pem: Any = conn.hget(keys.PUSH_VAPID, "private_pem")
    if not pem:
        return None
    return pem if isinstance(pem, bytes) else str(pem).encode()
