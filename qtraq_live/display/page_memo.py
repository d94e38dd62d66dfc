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
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_PAGES = 256  # distinct pages kept (a page is ~10-20 KB)

_key_of = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


class PageMemo:
    """A bounded map from a page's inputs to its text, least recently used out first."""

    __slots__ = ("_pages", "size")

    def __init__(self, size: int = MAX_PAGES) -> None:
        self._pages: OrderedDict[str, str] = OrderedDict()
        self.size = size

    def __len__(self) -> int:
        return len(self._pages)

    def html(self, inputs: Any, render: Callable[[], str]) -> str:
        """The text ``render()`` makes from ``inputs`` (plain JSON values; anything else is a
        TypeError, never a silently shared page), rendered once while it stays in the memo."""
        key = _key_of(inputs)
        text = self._pages.get(key)
        if text is not None:
            self._pages.move_to_end(key)
            return text
        text = self._pages[key] = render()
        if len(self._pages) > self.size:
            self._pages.popitem(last=False)
        return text


PAGES = PageMemo()  # this process's public pages
