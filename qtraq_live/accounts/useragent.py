"""Operating system and browser from a User-Agent header, for the account session log.

Only the family and major version are kept ("Android 14", "Chrome 120"): enough for a person to
recognise their own devices at /me/sessions, not a fingerprint. Order matters: many browsers
carry another's token (Edge and Opera say "Chrome", Chrome says "Safari").
"""

from __future__ import annotations

import re

UNKNOWN = "Unknown"

# (pattern, name); the first group, when present, is the version (dots or underscores).
_OS: tuple[tuple[str, str], ...] = (
    (r"Windows Phone(?: OS)? ([\d.]+)", "Windows Phone"),
    (r"Windows NT 10\.0", "Windows 10/11"),
    (r"Windows NT 6\.3", "Windows 8.1"),
    (r"Windows NT 6\.2", "Windows 8"),
    (r"Windows NT 6\.1", "Windows 7"),
    (r"Windows", "Windows"),
    (r"Android ([\d.]+)", "Android"),
    (r"Android", "Android"),
    (r"(?:iPhone|iPad|iPod).*? OS ([\d_]+)", "iOS"),
    (r"CrOS", "ChromeOS"),
    (r"Mac OS X ([\d_.]+)", "macOS"),
    (r"Macintosh", "macOS"),
    (r"Ubuntu", "Ubuntu"),
    (r"Linux", "Linux"),
)
_BROWSERS: tuple[tuple[str, str], ...] = (
    (r"Edg(?:e|A|iOS)?/([\d.]+)", "Edge"),
    (r"(?:OPR|Opera)/([\d.]+)", "Opera"),
    (r"SamsungBrowser/([\d.]+)", "Samsung Internet"),
    (r"UCBrowser/([\d.]+)", "UC Browser"),
    (r"YaBrowser/([\d.]+)", "Yandex"),
    (r"Firefox/([\d.]+)", "Firefox"),
    (r"FxiOS/([\d.]+)", "Firefox"),
    (r"CriOS/([\d.]+)", "Chrome"),
    (r"HeadlessChrome/([\d.]+)", "Headless Chrome"),
    (r"Chrom(?:e|ium)/([\d.]+)", "Chrome"),
    (r"Version/([\d.]+).*Safari/", "Safari"),
    (r"MSIE ([\d.]+)", "Internet Explorer"),
    (r"Trident/.*rv:([\d.]+)", "Internet Explorer"),
    (r"python-httpx/([\d.]+)", "httpx"),
    (r"python-requests/([\d.]+)", "requests"),
    (r"curl/([\d.]+)", "curl"),
)


def _match(ua: str, table: tuple[tuple[str, str], ...]) -> str:
    for pattern, name in table:
        m = re.search(pattern, ua)
        if m:
            if m.groups() and m.group(1):
                major = re.split(r"[._]", m.group(1))[0]
                return f"{name} {major}"
            return name
    return UNKNOWN


def parse(user_agent: str | None) -> tuple[str, str]:
    """``(os, browser)``, each ``"Unknown"`` when not recognised."""
    ua = (user_agent or "")[:512]
    return _match(ua, _OS), _match(ua, _BROWSERS)
