"""Channel URLs: Apprise URLs with a ``{to}`` placeholder, checked at start-up, sent through.

A channel is ``email``, ``sms`` or ``whatsapp``. Its URL comes from the config
(``[notify] email/sms/whatsapp``) or, per clinic, from the override a admin stored (kept in
SQLite, mirrored to the Redis hash ``qt:notify:ch:{clinic}`` so workers on other hosts see it).
``{to}`` in a URL is replaced by the recipient, URL-encoded (``+`` becomes ``%2B``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import quote

import apprise
from apprise import NotifyFormat
from apprise.result import AppriseResultStatus

from ..config import Settings
from ..errors import ConfigError

log = logging.getLogger(__name__)

CHANNELS = ("email", "sms", "whatsapp")
# A recipient of the right shape, so a URL can be checked before any real one is known.
SAMPLE_RECIPIENT = {"email": "patient@example.com", "sms": "+919800000000", "whatsapp": "+919800000000"}
# What a provider's answer tells us, as recorded in the delivery log.
ACCEPTED, REJECTED, UNREACHABLE, TIMEOUT = "accepted", "rejected", "unreachable", "timeout"


def fill(template: str, to: str) -> str:
    """The URL for one recipient; a URL without ``{to}`` is used as it is."""
    return template.replace("{to}", quote(to, safe=""))


def check_url(key: str, channel: str, template: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless Apprise can use the URL."""
    if channel not in CHANNELS:
        raise ConfigError(key, f"unknown channel {channel!r} (expected one of {', '.join(CHANNELS)})")
    url = fill(template, SAMPLE_RECIPIENT[channel]).replace("{dlt_sender}", "QTRAQC").replace(
        "{dlt_template}", "1107161234567890123")  # DLT placeholders (workers/dlt.py) filled at send time
    if "://" not in template or apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
        raise ConfigError(key, "not a valid Apprise URL (see docs/notifications.md for tested examples)")


def configured(settings: Settings) -> dict[str, str]:
    """The channels the config sets, each URL checked: ``{channel: url template}``."""
    out: dict[str, str] = {}
    for channel in CHANNELS:
        template = settings[f"notify.{channel}"].strip()
        if template:
            check_url(f"notify.{channel}", channel, template)
            out[channel] = template
    return out


def effective(base: Mapping[str, str], override: Mapping[str, str]) -> dict[str, str]:
    """A clinic's channels: its own URLs where it has them, the config's otherwise."""
    return {c: override.get(c) or base[c] for c in CHANNELS if override.get(c) or base.get(c)}


def send(url: str, title: str, body: str, to: str) -> tuple[str, str]:
    """Hand one message to the provider: ``(answer, detail)``; ``answer`` is how it replied
    (``accepted`` …), ``detail`` Apprise's warnings with the recipient masked, for our log.

    ``timeout`` means Apprise stopped waiting: the provider may or may not have taken it.
    """
    sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))  # one service: no thread pool
    if not sender.add(url):
        return REJECTED, "Apprise could not load the URL"
    # Our text is plain text: Apprise escapes it for an HTML channel (email), so a name such as
    # '<a href=…>Click to verify</a>' arrives as those characters, never as a working link.
    result = sender.notify(body=body, title=title, body_format=NotifyFormat.TEXT)
    detail = " ".join(_masked(str(getattr(e, "message", "")), to) for e in result.logs()
                      if getattr(e, "level", "") in ("WARNING", "ERROR"))
    if result.status == AppriseResultStatus.SUCCESS:
        return ACCEPTED, ""
    if result.status == AppriseResultStatus.TIMEOUT or result.timeout_count:
        return TIMEOUT, detail
    if "connection error" in detail.lower():
        return UNREACHABLE, detail
    return REJECTED, detail


def _masked(text: str, to: str) -> str:
    for form in {to, quote(to, safe=""), to.lstrip("+")}:
        text = text.replace(form, "<recipient>")
    return text
