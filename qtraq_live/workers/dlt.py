"""India's TRAI DLT rules for SMS: a registered sender, and each message a registered template.

``[notify.dlt] enabled = true`` makes every SMS carry ``sender`` and the template id of its
notice kind (``[notify.dlt.templates] <kind> = "<id>"``; the text of the kind in English, and
``<kind>_hi`` for its Hindi text when that is registered too). A kind without an id stops
``serve`` and the workers at start with a :class:`ConfigError` naming
``notify.dlt.templates.<kind>``. An SMS in a language whose text has no registered id is sent
in English, the text the operator knows.

The ids reach the provider two ways: a ``json://``, ``form://`` or ``xml://`` URL gets them as
payload fields ``sender`` and ``template_id`` (Apprise's ``:field=value``), and any URL may
name ``{dlt_sender}`` and ``{dlt_template}`` where its provider wants them.

:func:`registered_text` is the text to register for a kind: the template with each variable
(and each optional part) written ``{#var#}``, as the DLT portals ask. ``python -m
qtraq_live.workers.dlt`` prints them all (docs/notifications.md holds a copy).
"""

from __future__ import annotations

import re
import sys
from functools import cache
from urllib.parse import quote, urlsplit

from ..config import Settings
from ..errors import ConfigError
from .render import KINDS, LANGS, environment

VAR = "{#var#}"
VAR_CHARS = 30  # what one variable may hold (a link may be longer)
PAYLOAD_SCHEMES = ("json", "jsons", "form", "forms", "xml", "xmls")
_OPTIONAL = re.compile(r"{%-?\s*if\b.*?{%-?\s*endif\s*-?%}", re.S)
_EXPR = re.compile(r"{{.*?}}", re.S)
ENGLISH = "en"


def template_key(kind: str, lang: str) -> str:
    """The key under ``[notify.dlt.templates]`` for a kind's text in a language."""
    return kind if lang == ENGLISH else f"{kind}_{lang}"


def check(settings: Settings) -> None:
    """With DLT on: a sender and a template id for every notice kind, else ConfigError."""
    if not settings["notify.dlt.enabled"]:
        return
    if not re.fullmatch(r"[A-Za-z0-9]{3,11}", settings["notify.dlt.sender"]):
        raise ConfigError("notify.dlt.sender", "is required with notify.dlt.enabled (the registered header, e.g. QTRAQC)")
    templates = settings["notify.dlt.templates"]
    for kind in KINDS:
        if not templates.get(kind, "").strip():
            raise ConfigError(f"notify.dlt.templates.{kind}",
                              "has no template id (every notice kind needs one with notify.dlt.enabled)")
    for key, value in templates.items():
        base, _, lang = key.rpartition("_")
        if key not in KINDS and not (base in KINDS and lang in LANGS):
            raise ConfigError(f"notify.dlt.templates.{key}", "is not a notice kind (see docs/notifications.md)")
        if not re.fullmatch(r"\d{6,30}", value.strip()):
            raise ConfigError(f"notify.dlt.templates.{key}", "must be the numeric template id")


def sms_lang(settings: Settings, kind: str, lang: str) -> str:
    """The language an SMS goes in: its own when its text is registered (or DLT is off)."""
    if not settings["notify.dlt.enabled"] or settings["notify.dlt.templates"].get(template_key(kind, lang)):
        return lang
    return ENGLISH


def apply(url: str, settings: Settings, kind: str, lang: str) -> str:
    """The SMS URL carrying the sender and the template id (unchanged with DLT off)."""
    if not settings["notify.dlt.enabled"]:
        return url
    sender = settings["notify.dlt.sender"]
    template = settings["notify.dlt.templates"][template_key(kind, lang)].strip()
    url = url.replace("{dlt_sender}", quote(sender, safe="")).replace("{dlt_template}", quote(template, safe=""))
    if urlsplit(url).scheme.lower() in PAYLOAD_SCHEMES:
        url += ("&" if "?" in url else "?") + f":sender={quote(sender, safe='')}&:template_id={quote(template, safe='')}"
    return url


@cache
def registered_text(kind: str, lang: str) -> str:
    """The message text of a kind as it is registered: variables and optional parts as {#var#}."""
    source, _, _ = environment().loader.get_source(environment(), f"{lang}/{kind}.txt")  # type: ignore[union-attr]
    body = source.strip().partition("\n")[2]
    return " ".join(_EXPR.sub(VAR, _OPTIONAL.sub(VAR, body)).split())


def matches(registered: str, text: str) -> bool:
    """Whether an SMS text fits its registered template (a variable holds up to 30 characters, a link more).
    Adjacent variables (a notice's optional parts, one after another) are matched as one that holds
    30 characters each: the same texts, without a regex that backtracks through every split."""
    pattern = "".join(f"(?:.{{0,{VAR_CHARS * part.count(VAR)}}}|https?://\\S+)" if part.startswith(VAR)
                      else re.escape(part) for part in re.split(r"((?:{#var#})+)", registered))
    return re.fullmatch(pattern, text) is not None


def listing() -> str:
    """Every text to register, kind by kind: the section of docs/notifications.md."""
    lines = []
    for kind in KINDS:
        for lang in LANGS:
            lines.append(f"| `{template_key(kind, lang)}` | {registered_text(kind, lang)} |")
    return "\n".join(["| key | text to register |", "|---|---|", *lines]) + "\n"


if __name__ == "__main__":  # python -m qtraq_live.workers.dlt
    sys.stdout.write(listing())
