"""Notice text from Jinja2 templates: ``templates/notices/{lang}/{kind}.txt``.

The first line of a template is the subject (email only); the rest is the message, kept to
one SMS segment where the language allows (160 GSM characters; 70 for Indian scripts).
Languages come from :mod:`qtraq_live.languages`; ``plural()`` picks plural forms by Babel's
CLDR rules, the same rules the pages use.
Undefined variables are errors, so a template and its context cannot silently drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache, partial
from typing import Any

import jinja2

from ..languages import DEFAULT_LANG, LANGS, plural_index

logger = logging.getLogger(__name__)

# kind -> RQ queue: calls and codes jump the line.
KINDS: dict[str, str] = {
    "issued": "notify", "ahead": "notify", "called": "notify-high", "recalled": "notify-high",
    "skipped": "notify", "no_show": "notify", "cancelled": "notify", "paused": "notify",
    "welcome": "notify", "verify_code": "notify-high", "appointment_booked": "notify",
    "appointment_reminder": "notify", "appointment_cancelled": "notify", "test": "notify-high",
    # answers to a patient's SMS or WhatsApp reply (qtraq_live/inbound): they wait for it
    "reply_confirmed": "notify-high", "reply_late": "notify-high", "reply_late_refused": "notify-high",
    "reply_cancelled": "notify-high", "reply_status": "notify-high", "reply_help": "notify-high",
    # patient services (#22)
    "feedback_request": "notify", "admin_notice": "notify", "security_login": "notify-high",
    "security_password": "notify-high", "security_erasure": "notify-high",
    "contact_in_use": "notify-high",
    # a personal data breach (DPDP Rules, rule 7: `qtraq-live breach-report --send`)
    "security_breach": "notify",
}
QUEUES = ("notify-high", "notify")
# kinds whose content the law prescribes: they take as many SMS segments as they need
MULTI_SEGMENT = ("security_breach",)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("qtraq_live.workers", "templates/notices"),
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
    )


def plural(lang: str, n: int, one: str, other: str) -> str:
    """``{{ plural(ahead, "{n} person", "{n} people") }}`` in a template: the form the
    language's CLDR rule picks for ``n``, with ``{n}`` replaced by the number."""
    return (one if plural_index(lang, int(n)) == 0 else other).replace("{n}", str(n))


def render(kind: str, lang: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """``(subject, body)``; raises ``jinja2.TemplateError`` for a broken template or context.

    A language outside :data:`LANGS` is read as the default; a kind not yet translated into
    ``lang`` goes out in English rather than not at all (a test keeps every kind translated).
    """
    lang = lang if lang in LANGS else DEFAULT_LANG
    try:
        template = environment().get_template(f"{lang}/{kind}.txt")
    except jinja2.TemplateNotFound:
        if lang == DEFAULT_LANG:
            raise
        logger.warning("notice template %s/%s.txt missing; sent in %s", lang, kind, DEFAULT_LANG)
        lang, template = DEFAULT_LANG, environment().get_template(f"{DEFAULT_LANG}/{kind}.txt")
    text = template.render(**context, plural=partial(plural, lang)).strip()
    subject, _, body = text.partition("\n")
    return subject.strip(), " ".join(body.split())
