"""Logging of every process: one line per record on stderr, JSON or text (``log_format``;
``auto``, the default, prints text on a terminal and JSON under a service manager).

A JSON line holds ``time``, ``level``, ``logger``, ``message``, ``pid``, ``request_id`` when
the record was made while answering a request or serving a socket, ``exc`` for a traceback,
and any ``extra=`` fields. Two filters sit on the one handler, so they see every record of
every library: :class:`RequestIdFilter` adds the id that the web middleware put in
:data:`REQUEST_ID`, and :class:`RedactFilter` masks phone numbers, email addresses and
token-shaped strings, a safety net under the rule that no personal data is logged at all.
Format and fields: ``docs/observability.md``.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from ..config import Settings
from . import fastpaths

REQUEST_ID: ContextVar[str | None] = ContextVar("qtraq_request_id", default=None)

# E.164 numbers, also URL-encoded (Apprise URLs carry "%2B91…"); 8 to 15 digits.
PHONE = re.compile(r"(?:\+|%2[Bb])[1-9]\d{7,14}(?!\d)")
EMAIL = re.compile(r"[^\s@<>\"'(),;:/\[\]]+(?:@|%40)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{22,}(?![A-Za-z0-9_-])")
# Not secrets, though as long: lower-case words joined by _ or - (module, file and job names,
# hex digests) and CamelCase class names (UnixDomainSocketConnection). A random token of 22+
# URL-safe characters takes either shape with a chance below one in ten thousand.
_IDENTIFIER = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*|(?:[A-Z][a-z]+)+")

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "color_message", "taskName"}
_TRACEBACKS = logging.Formatter()


def redact(text: str) -> str:
    """``text`` with phones, emails and token-shaped strings replaced by placeholders."""
    text = EMAIL.sub("[email]", text)
    text = PHONE.sub("[phone]", text)
    return TOKEN.sub(lambda m: m[0] if _IDENTIFIER.fullmatch(m[0]) else "[token]", text)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class RedactFilter(logging.Filter):
    """Rewrites the record in place: the formatted message, the traceback and string extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, as logging always does
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            out["request_id"] = request_id
        for key, value in _extras(record).items():
            out.setdefault(key, value if isinstance(value, str | int | float | bool | None) else str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request {rid}]" if rid else line


FORMATTERS = {"json": "qtraq_live.runtime.logs.JsonFormatter", "text": "qtraq_live.runtime.logs.TextFormatter"}


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``dictConfig`` of every process (uvicorn applies it in each HTTP process).
    Classes are named by import path so the dict survives pickling to spawned processes."""
    level = str(settings["log_level"]).upper()
    fmt = settings["log_format"]
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "qtraq_live.runtime.logs.RequestIdFilter"},
                    "redact": {"()": "qtraq_live.runtime.logs.RedactFilter"}},
        "formatters": {"line": {"()": FORMATTERS[fmt]}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line",
                                "filters": ["request_id", "redact"], "stream": "ext://sys.stderr"}
                     if not settings["log_file"] else
                     {"class": "logging.FileHandler", "formatter": "line", "filters": ["request_id", "redact"],
                      "filename": settings["log_file"], "encoding": "utf-8"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {"uvicorn": {"level": level}, "uvicorn.access": {"level": level}},
    }


def configure_logging(settings: Settings) -> None:
    """Once per process, before any work: the CLI does it for every command."""
    logging.config.dictConfig(logging_config(settings))
    fastpaths.report()
