"""The API's answers: JSON written by orjson (a big queue snapshot is dozens of tickets), and a
CSV file to download.

The same JSON as Starlette's ``JSONResponse`` (compact, UTF-8, keys in order, non-string keys
as strings), several times faster. What orjson would write but the standard encoder refuses
(dates, dataclasses) or cannot write (integers beyond 64 bits) goes through Starlette's
encoder, as before. Two differences, neither in any answer we make: a float NaN is written as
``null`` rather than failing, and very large or small floats are spelled differently (``1e16``
for ``1e+16``: the same number).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette import responses
from starlette.requests import Request

from ..errors import Invalid

OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=OPTIONS)
        except TypeError:
            return super().render(content)


def wants_csv(request: Request) -> bool:
    """``?format=csv`` asks for a spreadsheet instead of JSON (``json``, the default)."""
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise Invalid("format", "must be json or csv")
    return fmt == "csv"


def csv_download(name: str, text: str) -> responses.Response:
    """``text`` as a CSV file the browser saves as ``name.csv``."""
    return responses.PlainTextResponse(text, media_type="text/csv",
                                       headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def range_report(as_csv: bool, kind: str, data: dict[str, Any], to_csv: Callable[[dict[str, Any]], str]) -> responses.Response:
    """A clinic's figures over a range of days (``clinic``, ``from``, ``to`` in ``data``): JSON,
    or with ``as_csv`` the file ``KIND-CLINIC-FROM-TO.csv``."""
    if as_csv:
        return csv_download(f"{kind}-{data['clinic']}-{data['from']}-{data['to']}", to_csv(data))
    return JSONResponse(data)
