"""A real ``qtraq-live serve`` for the messaging tests (replies, Web Push, spoken calls).

:func:`messaging_server` starts it with a seeded clinic (``c1``, queue ``gp``), an admin, the
inbound secrets below, SMS to one local :class:`~tests.support_notify.Sink` and WhatsApp to
another (``wa_sink``), and extra config appended. :func:`admin_client` logs the admin in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support_notify import Sink, running_sink, wait_until
from tests.support_serve import ADMIN_PASSWORD_ENV, ServeProcess, one_clinic_config

ADMIN_PASSWORD = "messaging-admin-passphrase"
SMS_SECRET = "sms-gateway-shared-secret-for-tests"
WA_VERIFY = "wa-verify-token-for-tests"
WA_APP_SECRET = "wa-app-secret-for-tests"
CONFIG = """
[inbound]
rate_limit = {rate_limit}
late_places = 3
{extra}
""" + one_clinic_config("Sunrise Clinic")


@pytest.fixture
def wa_sink() -> Iterator[Sink]:
    """A second HTTP sink: the WhatsApp provider (the first, ``sink``, is the SMS gateway)."""
    with running_sink() as s:
        yield s


@contextlib.contextmanager
def messaging_server(tmp_path: Path, sink: Sink | None = None, wa_sink: Sink | None = None, *,
                     rate_limit: int = 50, extra: str = "", env: dict[str, str] | None = None) -> Iterator[ServeProcess]:
    (tmp_path / "qtraq.toml").write_text(CONFIG.format(rate_limit=rate_limit, extra=extra))
    full = {
        "QTRAQ_CONFIG": str(tmp_path / "qtraq.toml"),
        ADMIN_PASSWORD_ENV: ADMIN_PASSWORD,
        "QTRAQ_INBOUND_SMS_SECRET": SMS_SECRET,
        "QTRAQ_INBOUND_WHATSAPP_VERIFY_TOKEN": WA_VERIFY,
        "QTRAQ_INBOUND_WHATSAPP_APP_SECRET": WA_APP_SECRET,
        "QTRAQ_NOTIFY_RETRY_BASE_MS": "200",
        "QTRAQ_LOG_LEVEL": "info",
        "QTRAQ_LOG_FORMAT": "text",
        **({"QTRAQ_NOTIFY_SMS": sink.url()} if sink else {}),
        **({"QTRAQ_NOTIFY_WHATSAPP": wa_sink.url()} if wa_sink else {}),
        **(env or {}),
    }
    with ServeProcess(tmp_path / "data", env=full) as srv:
        yield srv


@contextlib.contextmanager
def admin_client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{url}/api/v1", timeout=10) as c:
        r = c.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield c


def issue(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    r = admin.post("/queues/gp/tickets", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def wait_for_notifier(srv: ServeProcess, clinic: str = "c1") -> None:
    """Until the notifier reads the clinic's events (it looks for new clinics every 2 s; events
    before that only rebuild its mirror, so a threshold notice they would cause is not sent)."""
    client = redis.Redis(unix_socket_path=str(srv.data_dir / "redis" / "redis.sock"), decode_responses=True)
    try:
        def ready() -> bool:
            try:
                return any(g["name"] == "notify" for g in client.xinfo_groups(f"qt:c:{clinic}:events"))
            except redis.ResponseError:  # no stream yet
                return False
        wait_until(ready, "the notifier to read the clinic's events")
    finally:
        client.close()
