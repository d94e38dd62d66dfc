"""A local stand-in for the ABDM gateway (tests only, not shipped).

It speaks the HIECM v3 endpoints the bridge uses, with their headers and payloads as the NHA
wrapper, care_abdm and the NHA sandbox docs show them:

- ``POST /api/hiecm/gateway/v3/sessions`` ``{clientId, clientSecret, grantType}`` with
  ``REQUEST-ID``, ``TIMESTAMP``, ``X-CM-ID`` → ``{accessToken, expiresIn, refreshExpiresIn,
  refreshToken, tokenType}``; wrong credentials → 401.
- ``GET /api/hiecm/gateway/v3/certs`` → the JWK set whose key signs its callbacks.
- ``POST /api/hiecm/patient-share/v3/on-share`` with ``Authorization: Bearer <session token>``
  → 202, the body kept in :attr:`FakeGateway.replies`; an unknown or expired session → 401.

Failures on demand: :meth:`expire_sessions` (the next call with an old token gets 401),
:attr:`fail_on_share` (that many on-share calls answer 500). :meth:`share` plays the gateway's
side of a scan: it POSTs a share to the bridge with a token signed by its key.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID, CLIENT_SECRET, HIP_ID = "SBX_QTRAQ", "sandbox-secret-for-tests", "IN2810014366"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# The share exactly as the NHA sandbox docs give it for /api/v3/hip/patient/share (placeholders
# filled in; the wrapper's ProfileShareV3Request has the same fields).
NHA_SAMPLE: dict[str, Any] = {
    "intent": "PROFILE_SHARE",
    "metaData": {"hipId": HIP_ID, "context": "6", "hprId": "testhpr@hpr.abdm", "latitude": 20.5937,
                 "longitude": 78.9629},
    "profile": {"patient": {
        "abhaNumber": "91-1234-5678-9012", "abhaAddress": "johnkumar@sbx", "name": "John Kumar", "gender": "M",
        "dayOfBirth": "15", "monthOfBirth": "1", "yearOfBirth": "1990",
        "address": {"line": "Address line 1", "district": "Coimbatore", "state": "Tamil Nadu", "pincode": "641001"},
        "phoneNumber": "9876543210"}},
}


# The NHA ABDM-wrapper's own sample of a shared profile (docs/wrapperV3.yaml, the examples of
# ShareProfileV3Request and PatientV3Details, as its HIP receives it), in the gateway's envelope.
WRAPPER_SAMPLE: dict[str, Any] = {
    "intent": "PROFILE_SHARE",
    "metaData": {"hipId": "Predator_HIP", "context": "COUNTER_001", "hprId": None, "latitude": None,
                 "longitude": None},
    "profile": {"patient": {
        "abhaAddress": "ajitesh6x@sbx", "abhaNumber": "91-1234-1234-1234", "name": "Venu Ajitesh", "gender": "M",
        "address": {"line": None, "district": None, "state": None, "pincode": None},
        "yearOfBirth": "2020", "dayOfBirth": "05", "monthOfBirth": "05",
        "identifiers": [{"value": "9999999999", "type": "MOBILE"}]}},
}


def sample(**patient: Any) -> dict[str, Any]:
    """The NHA sample with some patient fields (or ``context=``) changed."""
    body = json.loads(json.dumps(NHA_SAMPLE))
    if "context" in patient:
        body["metaData"]["context"] = patient.pop("context")
    body["profile"]["patient"].update(patient)
    return body


class FakeGateway:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "fake-" + secrets.token_hex(4)
        self.sessions: dict[str, float] = {}  # access token → expiry (epoch s)
        self.session_requests: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []  # {"headers", "body"} of accepted on-shares
        self.on_share_calls = 0
        self.fail_on_share = 0
        self.certs_fetched = 0
        self.certs_down = False  # the certs endpoint answers 503
        self.errors: list[str] = []  # protocol mistakes the bridge made
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the gateway's own side ------------------------------------------------------------

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, *, key: Any = None, kid: str | None = None, aud: str = "account", exp_in: int = 600,
              alg: str = "RS256") -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": aud, "iat": now, "exp": now + exp_in, "clientId": "gateway",
                  "sub": "gateway"}
        return jwt.encode(claims, key or self.key, algorithm=alg, headers={"kid": kid or self.kid})

    def share(self, bridge_url: str, body: Any, *, request_id: str | None = None,
              token: str | None = None) -> httpx.Response:
        """POST a share to the bridge as the gateway does."""
        headers = {"REQUEST-ID": request_id or str(uuid.uuid4()),
                   "TIMESTAMP": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                   "X-HIP-ID": HIP_ID, "Content-Type": "application/json"}
        if token != "":
            headers["Authorization"] = f"Bearer {token or self.token()}"
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(bridge_url.rstrip("/") + "/api/v3/hip/patient/share", content=data, headers=headers,
                          timeout=10)

    def replies_for(self, request_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.replies if r["body"].get("response", {}).get("requestId") == request_id]

    # -- HTTP ------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _common_headers_ok(self) -> bool:
                problems = []
                try:
                    uuid.UUID(self.headers.get("REQUEST-ID", ""))
                except ValueError:
                    problems.append("REQUEST-ID is not a UUID")
                if not TIMESTAMP.match(self.headers.get("TIMESTAMP", "")):
                    problems.append("TIMESTAMP is not UTC ISO 8601 with milliseconds and Z")
                if self.headers.get("X-CM-ID") != "sbx":
                    problems.append("X-CM-ID is not sbx")
                with gateway.lock:
                    gateway.errors.extend(f"{self.path}: {p}" for p in problems)
                if problems:
                    self._answer(400, {"error": {"code": "ABDM-1002", "message": "; ".join(problems)}})
                return not problems

            def do_GET(self) -> None:
                if self.path != "/api/hiecm/gateway/v3/certs":
                    return self._answer(404, {"error": {"code": "ABDM-404", "message": "not found"}})
                if not self._common_headers_ok():
                    return None
                with gateway.lock:
                    gateway.certs_fetched += 1
                if gateway.certs_down:
                    return self._answer(503, {"error": {"code": "ABDM-9999", "message": "unavailable"}})
                return self._answer(200, gateway.jwks())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._answer(400, {"error": {"code": "ABDM-1001", "message": "bad JSON"}})
                if not self._common_headers_ok():
                    return None
                if self.path == "/api/hiecm/gateway/v3/sessions":
                    with gateway.lock:
                        gateway.session_requests.append(body)
                    if body != {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "grantType": "client_credentials"}:
                        return self._answer(401, {"error": {"code": "ABDM-1006", "message": "invalid client"}})
                    token = secrets.token_urlsafe(24)
                    with gateway.lock:
                        gateway.sessions[token] = time.time() + 1200
                    return self._answer(202, {"accessToken": token, "expiresIn": 1200, "refreshExpiresIn": 1800,
                                              "refreshToken": secrets.token_urlsafe(24), "tokenType": "bearer"})
                if self.path == "/api/hiecm/patient-share/v3/on-share":
                    auth = self.headers.get("Authorization", "")
                    with gateway.lock:
                        gateway.on_share_calls += 1
                        known = auth.startswith("Bearer ") and gateway.sessions.get(auth[7:], 0) > time.time()
                        failing = gateway.fail_on_share > 0
                        if known and failing:
                            gateway.fail_on_share -= 1
                    if not known:
                        return self._answer(401, {"code": "900901", "message": "Invalid Credentials"})
                    if failing:
                        return self._answer(500, {"error": {"code": "ABDM-9999", "message": "downstream down"}})
                    if self.headers.get("X-HIP-ID") != HIP_ID:
                        with gateway.lock:
                            gateway.errors.append("on-share without the X-HIP-ID header")
                    with gateway.lock:
                        gateway.replies.append({"headers": dict(self.headers), "body": body})
                    return self._answer(202)
                return self._answer(404, {"error": {"code": "ABDM-404", "message": "not found"}})

        return Handler
