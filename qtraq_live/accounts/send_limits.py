"""How often verification codes may go out, counted in Redis where no contact change resets them.

``codes.py`` limits the resends of one pending code, but that row goes when the contact changes,
so alternating ``PATCH /me {"mobile": …}`` used to send a fresh code to any number at will.
These counters are keyed by the destination itself (whichever account asks) and by the account
(whatever its contacts), are atomic in Redis (so racing requests count once each), and also
cap how often an account may change its contacts at all.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from ..web import ratelimit

# (scope, limit, window in seconds)
PER_DESTINATION = (("code-dest-minute", 1, 60), ("code-dest-hour", 5, 3600), ("code-dest-day", 10, 86_400))
PER_ACCOUNT = (("code-account-hour", 10, 3600),)
CONTACT_CHANGES = ("contact-change", 10, 3600)  # PATCH /me changing email or mobile, per account
IN_USE_NOTICES = ("in-use-dest", 3, 86_400)  # "someone tried to use your contact", per destination


async def count_code(redis: aioredis.Redis, account_id: int, channel: str, address: str) -> None:
    """Count one code to ``address`` for ``account_id``; 429 (RateLimited) when over a limit."""
    destination = f"{channel}:{address.lower()}"
    for scope, limit, window in PER_DESTINATION:
        await ratelimit.hit(redis, scope, destination, limit, window)
    for scope, limit, window in PER_ACCOUNT:
        await ratelimit.hit(redis, scope, str(account_id), limit, window)


async def count_contact_change(redis: aioredis.Redis, account_id: int) -> None:
    scope, limit, window = CONTACT_CHANGES
    await ratelimit.hit(redis, scope, str(account_id), limit, window)


async def count_in_use_notice(redis: aioredis.Redis, channel: str, address: str) -> None:
    scope, limit, window = IN_USE_NOTICES
    await ratelimit.hit(redis, scope, f"{channel}:{address.lower()}", limit, window)
