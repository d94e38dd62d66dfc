"""Rendered public pages, kept by everything they are made of.

An anonymous ``/join/{q}`` or ``/display/{clinic}`` page is the same text for every visitor who
asks with the same inputs: the template, the language, the query string (the language links
repeat it) and the values the route hands to the template. Its key is those inputs themselves,
serialised, so an entry can never be stale: when a queue's waiting count or name changes, the
next request asks for another key, and the old entry ages out of the bounded LRU. There is no
invalidation, and no version to keep in step with anything (docs/fanout.md, "Cost follows
change": per anonymous request, a key of a few hundred bytes instead of a template render).

Only routes whose inputs are plain JSON values use it (``render.page(..., memo=True)``); the
response around the text (headers, the language cookie) is made per request.

A page that is the same for everyone but for a few texts (a patient's ticket: its label, its
place, its wait) is kept as a *frame*: rendered once with a marker in each such text's place
and cut there, so a request costs a join of a few dozen pieces, each of its own texts escaped
for where it goes, instead of a template render.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

MAX_PAGES = 256  # distinct pages kept (a page is ~10-20 KB)

_key_of = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


class PageMemo:
    """A bounded map from a page's inputs to its text, least recently used out first."""

    __slots__ = ("_pages", "size")

    def __init__(self, size: int = MAX_PAGES) -> None:
        self._pages: OrderedDict[str, Any] = OrderedDict()
        self.size = size

    def __len__(self) -> int:
        return len(self._pages)

    def html(self, inputs: Any, render: Callable[[], Any]) -> Any:
        """The text ``render()`` makes from ``inputs`` (plain JSON values; anything else is a
        TypeError, never a silently shared page), rendered once while it stays in the memo."""
        key = _key_of(inputs)
        if key in self._pages:
            self._pages.move_to_end(key)
            return self._pages[key]
        text = self._pages[key] = render()
        if len(self._pages) > self.size:
            self._pages.popitem(last=False)
        return text


MARK = "\x00"  # never in a template, a translation or a validated text
DATA = "data:"  # a marker's name for an entry of the page's JSON data
Frame = tuple[str, ...]  # text, name, text, name, ..., text


def frame(render: Callable[[dict[str, Any], dict[str, Any]], str], fills: list[str], data_fills: list[str],
          json_block: Callable[[Any], str]) -> Frame | None:
    """The page ``render(marked, marked_data)`` makes with a marker in place of each fill, cut
    at the markers; None if a marker did not come through whole (a fill put through a filter,
    or a stray marker in another value): such a page is never shared."""
    marked = {name: Markup(f"{MARK}{name}{MARK}") for name in fills}
    marked_data = {name: f"{MARK}{DATA}{name}{MARK}" for name in data_fills}
    html = render(marked, marked_data)
    for marker in marked_data.values():
        html = html.replace(json_block(marker), marker)
    parts = tuple(html.split(MARK))
    names = set(parts[1::2])
    if len(parts) % 2 == 0 or not names <= set(fills) | {DATA + name for name in data_fills}:
        return None
    return parts


def fill(parts: Frame, fills: dict[str, str], data_fills: dict[str, Any], json_block: Callable[[Any], str]) -> str:
    """A frame with this request's values: texts HTML-escaped, data entries as JSON."""
    out = list(parts)
    for i in range(1, len(out), 2):
        name = out[i]
        out[i] = json_block(data_fills[name[len(DATA):]]) if name.startswith(DATA) else escape(fills[name])
    return "".join(out)


PAGES = PageMemo()  # this process's public pages and frames
