"""The translation catalogue of the screens: every user-facing string, in English and Hindi.

Catalogues are flat JSON files ``display/i18n/{lang}.json`` mapping a dotted key to a string
with ``{name}`` placeholders. English is the reference: a key missing from another language
falls back to English (a test keeps the catalogues complete). Keys under ``js.`` are the
strings the browser scripts need; pages hand them over in their JSON data block.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources

logger = logging.getLogger(__name__)

LANGS = ("en", "hi")
DEFAULT_LANG = "en"
# BCP 47 tags for the speech synthesiser and the <html lang> attribute.
SPEECH_TAGS = {"en": "en-IN", "hi": "hi-IN"}

Translator = Callable[..., str]


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The strings of one language (cached for the life of the process)."""
    text = resources.files("qtraq_live.display").joinpath(f"i18n/{lang}.json").read_text(encoding="utf-8")
    data: dict[str, str] = json.loads(text)
    return data


def translator(lang: str) -> Translator:
    """``t("key", n=3)``: the string in ``lang``, else English, else the key itself (visible, never a crash)."""
    own = catalogue(lang if lang in LANGS else DEFAULT_LANG)
    ref = catalogue(DEFAULT_LANG)

    def t(key: str, **params: object) -> str:
        text = own.get(key) or ref.get(key)
        if text is None:
            logger.warning("missing translation key %s", key)
            return key
        return text.format(**params) if params else text

    return t


def js_strings(lang: str) -> dict[str, str]:
    """The ``js.*`` strings for the browser, without the prefix, English filling any gap."""
    merged = {**catalogue(DEFAULT_LANG), **catalogue(lang if lang in LANGS else DEFAULT_LANG)}
    return {k[3:]: v for k, v in merged.items() if k.startswith("js.")}


def pick_lang(query: Mapping[str, str], cookies: Mapping[str, str], accept: str, preferred: str | None = None) -> str:
    """The page language: ``?lang=``, then the ``qt_lang`` cookie, then ``preferred`` (the clinic's
    language on a TV, the ticket's on a patient page), then Accept-Language, then English."""
    for choice in (query.get("lang"), cookies.get("qt_lang"), preferred):
        if choice in LANGS:
            return choice
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGS:
            return tag
    return DEFAULT_LANG
