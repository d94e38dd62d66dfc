"""The translation catalogue of the screens: every user-facing string, in every page language.

The strings are gettext files in ``display/i18n/``, read with Babel once, when the app is
created (no build step, no compiled .mo): ``messages.pot`` holds the English source, one ``{lang}.po`` each other
language. Every entry's ``msgctxt`` is the dotted key the code asks for (``"join.title"``),
its ``msgid`` the English text with ``{name}`` placeholders; an entry with ``msgid_plural``
has one text per plural form, chosen by the count (see :func:`translator`). A key with no
translation (or only a fuzzy one) falls back to English; a test keeps the catalogues
complete. Keys under ``js.`` are the strings the browser scripts need; a page hands over
those its own scripts use (``script_strings.py``) in its JSON data block (plural entries as a
list of forms, see ``common.js``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import BinaryIO

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from ..languages import DEFAULT_LANG, LANG_COOKIE, LANGS, LOCALE_TAGS, plural_index

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_LANG", "JS_PREFIX", "LANGS", "SPEECH_TAGS", "Message", "Translator", "accepted_langs", "catalogue",
           "js_strings", "load_all", "pick_lang", "plural_forms", "read_catalogue", "translator"]

# A catalogue entry: one text, or one text per plural form ("one", "other").
Message = str | tuple[str, ...]
Translator = Callable[..., str]
# BCP 47 tags for the speech synthesiser, clocks and the like (kept under its old name).
SPEECH_TAGS = LOCALE_TAGS
_PLACEHOLDER = re.compile(r"{(\w+)}")
# The keys of the browser scripts' strings start with it (``js.minutes`` is ``QT.t("minutes")``).
JS_PREFIX = "js."


def _source(lang: str) -> str:
    return "i18n/messages.pot" if lang == DEFAULT_LANG else f"i18n/{lang}.po"


def read_catalogue(f: BinaryIO, lang: str) -> Catalog:
    """Parse one gettext file; a malformed line raises ``PoFileError`` naming it."""
    return read_po(f, locale=None if lang == DEFAULT_LANG else lang, abort_invalid=True)


@cache
def po_file(lang: str) -> Catalog:
    """The parsed gettext file of one language (``messages.pot`` for English)."""
    with resources.files("qtraq_live.display").joinpath(_source(lang)).open("rb") as f:
        return read_catalogue(f, lang)


def _text(value: object) -> Message | None:
    if isinstance(value, (list, tuple)):
        forms = tuple(str(v) for v in value)
        return forms if all(forms) else None
    return str(value) if value else None


@cache
def catalogue(lang: str) -> Mapping[str, Message]:
    """The translated strings of one language, by key (English: the source text of every key).

    Untranslated and fuzzy entries are left out, so lookups fall back to English.
    """
    out: dict[str, Message] = {}
    for message in po_file(lang):
        if not message.id or not message.context:
            continue
        text = _text(message.id if lang == DEFAULT_LANG else message.string)
        if text is not None and (lang == DEFAULT_LANG or not message.fuzzy):
            out[message.context] = text
    return out


def load_all() -> None:
    """Read every language's file now (the app calls it at start): a broken file stops the
    server with Babel's error instead of failing a patient's first page."""
    for lang in LANGS:
        catalogue(lang)


def plural_forms(lang: str) -> str:
    """The ``Plural-Forms`` header of a language's file (tests compare it with the CLDR rule)."""
    return str(po_file(lang).plural_forms)


def _count(params: Mapping[str, object]) -> int:
    """The number that picks a plural form: ``n``, else the one parameter given."""
    value = params.get("n", next(iter(params.values())) if len(params) == 1 else 0)
    try:
        return int(str(value))
    except ValueError:
        return 0


def translator(lang: str) -> Translator:
    """``t("key", n=3)``: the string in ``lang``, else English, else the key itself (visible, never a crash)."""
    lang = lang if lang in LANGS else DEFAULT_LANG
    own, ref = catalogue(lang), catalogue(DEFAULT_LANG)

    def t(key: str, **params: object) -> str:
        text = own.get(key)
        rules = lang
        if text is None:
            text, rules = ref.get(key), DEFAULT_LANG
        if text is None:
            logger.warning("missing translation key %s", key)
            return key
        if isinstance(text, tuple):
            text = text[min(plural_index(rules, _count(params)), len(text) - 1)]
        return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), text) if params else text

    return t


@cache
def js_strings(lang: str, keys: frozenset[str]) -> Mapping[str, str | list[str]]:
    """The ``js.`` strings named in ``keys`` (without the prefix) for the browser, English
    filling any gap; made once per language and page (do not change the answer)."""
    own, ref = catalogue(lang if lang in LANGS else DEFAULT_LANG), catalogue(DEFAULT_LANG)
    out: dict[str, str | list[str]] = {}
    for key in sorted(keys):
        text = own.get(JS_PREFIX + key) or ref.get(JS_PREFIX + key)
        if text is not None:
            out[key] = list(text) if isinstance(text, tuple) else text
    return out


def accepted_langs(header: str) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (RFC 9110 q-values).

    ``hi-IN;q=0.8`` counts as ``hi``; ``q=0`` means "not this one"; a malformed weight drops
    that entry; equal weights keep the header's order. ``*`` is dropped (the caller's default
    applies anyway).
    """
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header[:512].split(",")):
        tag, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = -1.0
        primary = tag.split("-")[0].lower()
        if primary and primary != "*" and 0 < q <= 1:
            ranked.append((-q, i, primary))
    seen: list[str] = []
    for _, _, primary in sorted(ranked):
        if primary not in seen:
            seen.append(primary)
    return seen


def pick_lang(query: Mapping[str, str], cookies: Mapping[str, str], accept: str, preferred: str | None = None,
              allowed: Sequence[str] = LANGS) -> str:
    """The page language among ``allowed``: ``?lang=``, then the ``qt_lang`` cookie, then
    ``preferred`` (the clinic's language on a TV, the ticket's on a patient page), then the
    first acceptable language of Accept-Language, then English."""
    for choice in (query.get("lang"), cookies.get(LANG_COOKIE), preferred):
        if choice in allowed:
            return choice
    for tag in accepted_langs(accept):
        if tag in allowed:
            return tag
    return DEFAULT_LANG
