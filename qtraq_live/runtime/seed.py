"""Idempotent seeding: the config file's ``[[clinics]]``/``[[staff]]`` and the demo's clinic.

Everything here only *adds* what is missing, so it runs at every start: a clinic, queue or
user that already exists is left as it is (edits made in the admin pages win).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..accounts.passwords import common_passwords
from ..errors import ConfigError, QtraqError
from ..queue_engine import QueueEngine
from ..record import access
from .duties import Context

log = logging.getLogger(__name__)

CLINIC_OPTIONS = ("timezone", "mask_names", "lang", "region")
PRODUCTION_PASSWORD_MIN = 12
QUEUE_OPTIONS = ("avg_service_s", "self_checkin", "notify_ahead")


async def ensure_clinic(engine: QueueEngine, spec: Mapping[str, Any]) -> None:
    """Create the clinic and each of its ``queues`` that does not exist yet."""
    if await engine.get_clinic(spec["id"]) is None:
        await engine.create_clinic(spec["id"], spec["name"], actor="seed",
                                   **{k: spec[k] for k in CLINIC_OPTIONS if k in spec})
        log.info("created clinic %s", spec["id"])
    for q in spec.get("queues", []):
        if await engine.get_queue(q["id"]) is None:
            await engine.create_queue(spec["id"], q["id"], q["name"], q["prefix"], actor="seed",
                                      **{k: q[k] for k in QUEUE_OPTIONS if k in q})
            log.info("created queue %s", q["id"])


async def user_exists(ctx: Context, username: str) -> bool:
    return await ctx.store.fetchone("SELECT 1 FROM users WHERE username = ?", (username,)) is not None


async def ensure_user(ctx: Context, username: str, password: str, role: str,
                      queues: Sequence[str] = ()) -> bool:
    """Create the staff user unless one of that name exists. True when created."""
    if await user_exists(ctx, username):
        return False
    await access.create_user(ctx.store, ctx.redis, username, password, role, tuple(queues))
    log.info("created %s user %s", role, username)
    return True


def check_seed_password(key: str, username: str, password: str) -> None:
    """Production refuses a default or guessable staff password: a known weak one, a short one,
    or one built on the username (the error names the entry, never the password)."""
    lowered = password.lower()
    if len(password) < PRODUCTION_PASSWORD_MIN or lowered in common_passwords() or username.lower() in lowered:
        raise ConfigError(key, f"a weak or default password (at least {PRODUCTION_PASSWORD_MIN} characters, "
                               "not a common one, not containing the username) is refused in production")


async def apply_config_seed(ctx: Context) -> None:
    """Apply ``settings.seed``. A staff entry whose password variable is unset is skipped."""
    seed = ctx.settings.seed
    for i, clinic in enumerate(seed.get("clinics", [])):
        try:
            await ensure_clinic(ctx.engine, clinic)
        except QtraqError as exc:
            raise ConfigError(f"clinics[{i}]", exc.message) from None
    for i, staff in enumerate(seed.get("staff", [])):
        password = os.environ.get(staff["password_env"], "")
        if not password:
            log.warning("staff[%d]: %s is not set; user not created", i, staff["password_env"])
            continue
        if ctx.settings.production:
            check_seed_password(f"staff[{i}]", staff["username"], password)
        try:
            await ensure_user(ctx, staff["username"], password, staff["role"], staff.get("queues", []))
        except QtraqError as exc:
            raise ConfigError(f"staff[{i}]", exc.message) from None
