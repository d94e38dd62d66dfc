"""What a patient's reply asks for: keywords per language from the page catalogue.

The catalogue keys ``reply.words_{intent}`` hold comma-separated words in each language
(``"1, YES, Y, OK, COMING"``; ``"हाँ, हां, जी"``). A reply matches when its first word, in any
case and without surrounding punctuation, is one of them, in any language the catalogue has:
a Hindi speaker may type YES. The language of the word matched is the language of the answer.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from functools import cache

from ..display.i18n import LANGS, catalogue


class Intent(StrEnum):
    YES = "yes"  # confirm they are coming
    LATE = "late"  # move back a few places, once
    CANCEL = "cancel"  # leave the queue
    STATUS = "status"  # position and ETA
    HELP = "help"  # anything else


ASKED = (Intent.YES, Intent.LATE, Intent.CANCEL, Intent.STATUS)
_EDGES = re.compile(r"^[\s\"'.,!;:()\[\]-]+|[\s\"'.,!;:()\[\]-]+$")


def normalise(word: str) -> str:
    """Upper case, NFC (Devanagari typed two ways compares equal), no edge punctuation."""
    return _EDGES.sub("", unicodedata.normalize("NFC", word)).upper()


@cache
def words() -> dict[str, tuple[Intent, str]]:
    """Every keyword -> (intent, language); English first, so a word in two lists reads as English."""
    out: dict[str, tuple[Intent, str]] = {}
    for lang in LANGS:
        for intent in ASKED:
            for word in catalogue(lang).get(f"reply.words_{intent}", "").split(","):
                key = normalise(word)
                if key:
                    out.setdefault(key, (intent, lang))
    return out


def intent_of(text: str) -> tuple[Intent, str | None]:
    """``(intent, language of the keyword)``; ``(HELP, None)`` when no keyword leads the text."""
    stripped = text.strip()
    if not stripped:
        return Intent.HELP, None
    table = words()
    whole = normalise(stripped)
    if whole in table:  # "?" alone, or a keyword with punctuation around it
        return table[whole]
    first = normalise(stripped.split()[0])
    return table.get(first, (Intent.HELP, None))
