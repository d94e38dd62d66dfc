"""The API's JSON answers, written by orjson: a big queue snapshot is dozens of tickets.

The same JSON as Starlette's ``JSONResponse`` (compact, UTF-8, keys in order, non-string keys
as strings), several times faster. What orjson would write but the standard encoder refuses
(dates, dataclasses) or cannot write (integers beyond 64 bits) goes through Starlette's
encoder, as before. Two differences, neither in any answer we make: a float NaN is written as
``null`` rather than failing, and very large or small floats are spelled differently (``1e16``
for ``1e+16``: the same number).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette import responses

OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=OPTIONS)
        except TypeError:
            return super().render(content)
