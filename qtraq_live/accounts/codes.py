"""One-time codes that prove an account holds its email address and its mobile number.

Six digits, one pending code per account and channel, stored only as an HMAC keyed with the
server secret (six digits are too few to survive a plain hash), valid 10 minutes, at most 5
tries (then a new code is needed), and resent at most once a minute and 5 times an hour.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from ..errors import Conflict, Invalid, RateLimited
from ..record.store import Store
from . import records

log = logging.getLogger(__name__)

CHANNELS = ("email", "mobile")
CODE_TTL_MS = 10 * 60 * 1000
MAX_TRIES = 5
RESEND_GAP_MS = 60 * 1000
SENDS_PER_HOUR = 5
HOUR_MS = 3600 * 1000


def _digest(secret: str, account_id: int, channel: str, code: str) -> str:
    msg = f"{account_id}:{channel}:{code}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


async def issue(store: Store, secret: str, account_id: int, channel: str, now_ms: int) -> str:
    """A fresh code for ``channel`` (the previous one stops working). 429 when sent too often."""
    code = f"{secrets.randbelow(10**6):06d}"
    digest = _digest(secret, account_id, channel, code)
    async with store.transaction() as db:
        row = await db.fetchone("SELECT sent_at, window_start, sends FROM account_codes"
                                " WHERE account_id = ? AND channel = ?", (account_id, channel))
        window_start, sends = now_ms, 1
        if row is not None:
            wait_ms = row["sent_at"] + RESEND_GAP_MS - now_ms
            if wait_ms > 0:
                raise RateLimited("a code was sent less than a minute ago", retry_after=-(-wait_ms // 1000))
            if now_ms - row["window_start"] < HOUR_MS:
                window_start, sends = row["window_start"], row["sends"] + 1
                if sends > SENDS_PER_HOUR:
                    wait_ms = row["window_start"] + HOUR_MS - now_ms
                    raise RateLimited("too many codes sent this hour", retry_after=-(-wait_ms // 1000))
        await db.execute(
            "INSERT OR REPLACE INTO account_codes (account_id, channel, code_hash, expires_at, tries, sent_at,"
            " window_start, sends) VALUES (?,?,?,?,0,?,?,?)",
            (account_id, channel, digest, now_ms + CODE_TTL_MS, now_ms, window_start, sends))
    log.info("account %d: %s code issued", account_id, channel)
    return code


async def verify(store: Store, secret: str, account_id: int, channel: str, code: str, now_ms: int) -> None:
    """Mark the contact verified when ``code`` is right; each wrong try counts."""
    async with store.transaction() as db:
        account = await db.fetchone(f"SELECT {channel}, {channel}_verified FROM accounts WHERE id = ?", (account_id,))
        claimed = await db.fetchone("SELECT 1 FROM contact_claims WHERE account_id = ? AND channel = ?",
                                    (account_id, channel))
        if account is None or not (account[channel] or claimed):
            raise Conflict(f"channel: this account has no {channel} to verify", code="no_contact")
        if account[f"{channel}_verified"]:
            raise Conflict(f"channel: the {channel} is already verified", code="already_verified")
        row = await db.fetchone("SELECT code_hash, expires_at, tries FROM account_codes"
                                " WHERE account_id = ? AND channel = ?", (account_id, channel))
        if row is None or row["tries"] >= MAX_TRIES or row["code_hash"] == "":
            raise Conflict("code: no code pending; request a new one", code="no_code")
        if now_ms > row["expires_at"]:
            raise Invalid("code", "has expired; request a new one", code="code_expired")
        if not hmac.compare_digest(row["code_hash"], _digest(secret, account_id, channel, code)):
            await db.execute("UPDATE account_codes SET tries = tries + 1 WHERE account_id = ? AND channel = ?",
                             (account_id, channel))
            left = MAX_TRIES - row["tries"] - 1
            wrong = Invalid("code", f"is wrong ({left} tries left)" if left else
                                   "is wrong; no tries left, request a new code", code="wrong_code")
        else:
            if claimed:  # the code proves the contact: take it from an unverified holder
                await records.claim_verified(db, account_id, channel)
            await db.execute(f"UPDATE accounts SET {channel}_verified = 1 WHERE id = ?", (account_id,))
            # keep the row (with an empty hash) so the resend limits still hold
            await db.execute("UPDATE account_codes SET code_hash = '' WHERE account_id = ? AND channel = ?",
                             (account_id, channel))
            log.info("account %d: %s verified", account_id, channel)
            return
    raise wrong  # after the transaction, so the counted try is committed
