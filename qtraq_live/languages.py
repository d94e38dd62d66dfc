"""The languages qtraq-live speaks, declared once.

Pages, notices, the language cookie, API field enums, settings and tests all take the list
from here. Patient-facing pages (check-in, ticket, account portal, privacy, errors), the TV
and the notices speak every language in :data:`LANGS`; staff pages speak :data:`STAFF_LANGS`.
Plural forms follow the CLDR rules (through Babel), the same rules the browser's
``Intl.PluralRules`` applies, so server and page scripts agree on "1 minute" / "2 minutes".
"""

from __future__ import annotations

from functools import cache

from babel import Locale

LANGS: tuple[str, ...] = ("en", "hi", "ta", "te", "bn", "mr")
STAFF_LANGS: tuple[str, ...] = ("en", "hi")
DEFAULT_LANG = "en"
# BCP 47 tags: <html lang> stays the bare code; these drive speech, clocks and number formats.
LOCALE_TAGS: dict[str, str] = {lang: f"{lang}-IN" for lang in LANGS}
# The cookie that remembers a `?lang=` choice from one page to the next.
LANG_COOKIE = "qt_lang"
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


def plural_index(lang: str, n: int) -> int:
    """Which plural form to use for ``n``: 0 for CLDR's "one", 1 for everything else.

    Every language in :data:`LANGS` has exactly these two forms (a test checks that the
    ``Plural-Forms`` header of each ``.po`` file agrees).
    """
    return 0 if _locale(lang if lang in LANGS else DEFAULT_LANG).plural_form(abs(n)) == "one" else 1
