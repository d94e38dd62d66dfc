"""The gateways' signatures: HMAC-SHA256 of the raw body, compared in constant time.

* our SMS gateway form: ``X-Signature: sha256=<hex>`` keyed with ``[inbound] sms_secret``;
* WhatsApp Cloud API: ``X-Hub-Signature-256: sha256=<hex>`` keyed with the Meta app secret.

Both have the same shape, so one check serves both.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    """The header value for ``body`` (tests and gateway authors use it too)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().lower().encode())
