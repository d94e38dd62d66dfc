"""Notice text from Jinja2 templates: ``templates/notices/{lang}/{kind}.txt``.

The first line of a template is the subject (email only); the rest is the message, kept to
one SMS segment where the language allows (160 GSM characters; 70 for Devanagari).
Undefined variables are errors, so a template and its context cannot silently drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2

LANGS = ("en", "hi")
# kind -> RQ queue: calls and codes jump the line.
KINDS: dict[str, str] = {
    "issued": "notify", "ahead": "notify", "called": "notify-high", "recalled": "notify-high",
    "skipped": "notify", "no_show": "notify", "cancelled": "notify", "paused": "notify",
    "welcome": "notify", "verify_code": "notify-high", "appointment_booked": "notify",
    "appointment_reminder": "notify", "appointment_cancelled": "notify", "test": "notify-high",
    "contact_in_use": "notify-high",
}
QUEUES = ("notify-high", "notify")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("qtraq_live.workers", "templates/notices"),
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
    )


def render(kind: str, lang: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """``(subject, body)``; raises ``jinja2.TemplateError`` for a broken template or context."""
    text = environment().get_template(f"{lang}/{kind}.txt").render(**context).strip()
    subject, _, body = text.partition("\n")
    return subject.strip(), " ".join(body.split())
