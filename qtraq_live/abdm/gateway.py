"""The outbound ABDM gateway client (sync: RQ jobs and the CLI use it).

A session (``POST /api/hiecm/gateway/v3/sessions`` with the bridge's client id and secret) gives
an access token valid for ``expiresIn`` seconds. It is kept in Redis until a minute before it
expires, so every worker process shares one session; a call answered 401 (the gateway ended the
session early) drops it and is made once more with a new one, as care_abdm's ``Request`` does.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import redis

from ..config import Settings
from ..engine import redis_keys as keys
from ..errors import ConfigError, Unavailable
from . import protocol

log = logging.getLogger(__name__)

TIMEOUT_S = 10
EARLY_S = 60  # renew a session this long before the gateway says it ends


class GatewayError(Unavailable):
    """The gateway refused a call or could not be reached; ``retry`` says whether trying again
    later may help (5xx, timeouts, connection errors) or not (4xx)."""

    def __init__(self, message: str, *, status: int | None = None, retry: bool = True) -> None:
        super().__init__(message)
        self.http_status = status
        self.retry = retry


def check_credentials(settings: Settings) -> None:
    """The settings a gateway call needs, or a ConfigError naming the first one missing."""
    for key in ("abdm.client_id", "abdm.client_secret", "abdm.hip_id"):
        if not settings[key]:
            raise ConfigError(key, "is required when abdm.enabled is true")


class Gateway:
    """Calls to the gateway on behalf of this bridge."""

    def __init__(self, settings: Settings, conn: redis.Redis, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.base = settings["abdm.gateway_url"].rstrip("/")
        self.conn = conn
        self.client = client or httpx.Client(timeout=TIMEOUT_S)

    def close(self) -> None:
        self.client.close()

    def _headers(self, request_id: str | None = None) -> dict[str, str]:
        return protocol.headers(self.settings["abdm.cm_id"], time.time(), request_id)

    def new_session(self) -> str:
        """A fresh access token, kept in Redis for the others."""
        check_credentials(self.settings)
        body = {"clientId": self.settings["abdm.client_id"], "clientSecret": self.settings["abdm.client_secret"],
                "grantType": "client_credentials"}
        r = self._send("POST", protocol.SESSIONS_PATH, body, self._headers())
        if r.status_code in (400, 401, 403):
            raise GatewayError("the gateway refused the client id and secret", status=r.status_code, retry=False)
        if r.status_code >= 300:
            raise GatewayError(f"session: the gateway answered {r.status_code}", status=r.status_code)
        try:
            data = r.json()
            token, expires_in = str(data["accessToken"]), int(data.get("expiresIn") or 600)
        except (ValueError, KeyError, TypeError):
            raise GatewayError("session: the gateway's answer has no accessToken") from None
        self.conn.set(keys.ABDM_SESSION, token, ex=max(expires_in - EARLY_S, 1))
        log.info("abdm: gateway session started (valid %d s)", expires_in)
        return token

    def session(self) -> str:
        token = self.conn.get(keys.ABDM_SESSION)
        if token:
            return token.decode() if isinstance(token, bytes) else str(token)
        return self.new_session()

    def post(self, path: str, body: dict[str, Any], extra_headers: dict[str, str] | None = None) -> httpx.Response:
        """POST with the session token; a 401 renews the session and tries once more."""
        for attempt in (1, 2):
            headers = {**self._headers(), **(extra_headers or {}), "Authorization": f"Bearer {self.session()}"}
            r = self._send("POST", path, body, headers)
            if r.status_code != 401 or attempt == 2:
                return r
            log.info("abdm: gateway answered 401, renewing the session")
            self.conn.delete(keys.ABDM_SESSION)
        raise AssertionError("unreachable")

    def on_share(self, body: dict[str, Any]) -> None:
        """Send an on-share reply; :class:`GatewayError` unless the gateway accepted it."""
        r = self.post(protocol.ON_SHARE_PATH, body, {"X-HIP-ID": self.settings["abdm.hip_id"]})
        if r.status_code >= 500:
            raise GatewayError(f"on-share: the gateway answered {r.status_code}", status=r.status_code)
        if r.status_code >= 300:
            raise GatewayError(f"on-share: the gateway refused it ({r.status_code})", status=r.status_code,
                               retry=False)

    def _send(self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> httpx.Response:
        try:
            return self.client.request(method, self.base + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise GatewayError(f"{path}: {type(exc).__name__}") from None
