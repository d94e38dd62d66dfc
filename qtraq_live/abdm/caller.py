"""Is a callback really from the ABDM gateway?

The gateway signs the ``Authorization: Bearer`` token of every callback (RS256) and publishes
its keys as a JWK set at ``{gateway}/api/hiecm/gateway/v3/certs``. As care_abdm's
``ABDMAuthentication`` does, the token is checked against those keys with the audience
``account``; unlike it, the key is picked by the token's ``kid`` (the first key only when the
token names none), the keys are kept for an hour rather than fetched per call, and an unknown
``kid`` refetches them at most once a minute (a key rotation is picked up, a flood of forged
``kid``s does not become a flood on the gateway).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import jwt

from ..config import Settings
from ..errors import Unauthorized, Unavailable
from . import protocol

log = logging.getLogger(__name__)

AUDIENCE = "account"
ALGORITHMS = ["RS256"]
KEEP_KEYS_S = 3600
REFETCH_AFTER_S = 60
LEEWAY_S = 30  # clock skew between the gateway and this server


class NotFromGateway(Unauthorized):
    """401: no token, or one the gateway's keys do not verify."""


class GatewayKeys:
    """The gateway's published signing keys, fetched when needed and kept for an hour."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.url = settings["abdm.gateway_url"].rstrip("/") + protocol.CERTS_PATH
        self.client = client
        self.keys: dict[str, Any] = {}  # kid ("" when the set names none) → public key
        self.fetched_at = 0.0  # when the keys were fetched (monotonic)
        self.tried_at: float | None = None  # when a fetch was last tried, whatever came of it
        self._lock = asyncio.Lock()

    async def fetch(self) -> None:
        self.tried_at = time.monotonic()
        headers = protocol.headers(self.settings["abdm.cm_id"], time.time())
        try:
            if self.client is None:
                async with httpx.AsyncClient(timeout=10) as client:
                    r = await client.get(self.url, headers=headers)
            else:
                r = await self.client.get(self.url, headers=headers)
            r.raise_for_status()
            keys: dict[str, Any] = {}
            for jwk in r.json()["keys"]:
                if jwk.get("kty") == "RSA":
                    keys.setdefault(str(jwk.get("kid") or ""), jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk)))
        except (httpx.HTTPError, ValueError, KeyError, TypeError, jwt.InvalidKeyError) as exc:
            log.warning("abdm: gateway keys unavailable: %s", type(exc).__name__)
            raise Unavailable("the ABDM gateway's keys could not be fetched") from None
        self.keys, self.fetched_at = keys, time.monotonic()
        log.info("abdm: %d gateway signing keys fetched", len(keys))

    async def key_for(self, kid: str) -> Any:
        async with self._lock:
            now = time.monotonic()
            stale = not self.keys or now - self.fetched_at > KEEP_KEYS_S or bool(kid and kid not in self.keys)
            # at most one fetch a minute, whatever callers send (a failed fetch counts too)
            if stale and (self.tried_at is None or now - self.tried_at > REFETCH_AFTER_S):
                await self.fetch()
            if not self.keys:
                raise Unavailable("the ABDM gateway's keys could not be fetched")
        if kid in self.keys:
            return self.keys[kid]
        if not kid and self.keys:
            return next(iter(self.keys.values()))  # care_abdm: the first key of the set
        raise NotFromGateway("the token is signed by a key the gateway does not publish")


async def verify(authorization: str | None, keys: GatewayKeys) -> dict[str, Any]:
    """The checked claims of a callback's bearer token; :class:`NotFromGateway` otherwise."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise NotFromGateway("a bearer token from the ABDM gateway is required")
    token = authorization[7:].strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise NotFromGateway("the bearer token is not a JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise NotFromGateway("the bearer token must be signed with RS256")
    key = await keys.key_for(str(header.get("kid") or ""))
    try:
        claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=ALGORITHMS, audience=AUDIENCE,
                                            leeway=LEEWAY_S, options={"require": ["exp"]})
    except jwt.PyJWTError as exc:
        raise NotFromGateway(f"the bearer token was refused: {type(exc).__name__}") from None
    return claims
