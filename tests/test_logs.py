"""Logs: JSON lines with request ids from every process, and no personal data or secret in them."""

from __future__ import annotations

import io
import json
import logging
import random
import string
import sys
from pathlib import Path

import pytest

from qtraq_live.config import Settings
from qtraq_live.runtime import logs

from tests.support_notify import Sink, sink  # noqa: F401
from tests.support_observe import observed_server, run_flow, until, value


def test_a_real_server_logs_json_lines_with_request_ids_and_nothing_private(
        tmp_path: Path, sink: Sink) -> None:  # noqa: F811
    with observed_server(tmp_path, sink) as srv:
        flow = run_flow(srv)
        flow.display.close()
        flow.admin.close()
        # SMS sent and email failed in the workers (Apprise logs both), counted by the duties
        until(srv.url, lambda s: value(s, "qtraq_notices_total", channel="sms", outcome="sent") >= 2
              and value(s, "qtraq_notices_total", channel="email", outcome="retried") >= 1, "notices tried")
        srv.stop()
    lines = [line for line in srv.log_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "pid"} <= r.keys() for r in records)
    assert len({r["pid"] for r in records}) >= 3  # supervisor, HTTP process, duties, workers
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert access and all(len(r.get("request_id", "")) == 32 for r in access), access[:3]
    assert any(r["logger"].startswith("qtraq_live") and r.get("request_id") for r in records)
    text = srv.log_text()
    assert "/api/v1/t/[token]" in text  # the access log's ticket paths, masked by the filter
    leaked = [secret for secret in flow.private if secret in text]
    assert not leaked, leaked


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("qtraq_live.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(("text", "masked"), [
    ("sms to +919812345678 failed", "sms to [phone] failed"),
    ("json://gw/send?:to=%2B919812345678", "json://gw/send?:to=[phone]"),
    ("mail for asha.k+clinic@mail.example.co.in bounced", "mail for [email] bounced"),
    ("mailtos://user:secretpass@smtp.example.com?to=x", "mailtos://user:[email]?to=x"),
    ("GET /api/v1/t/Zq3x_9fK2mPq-7LrT0aBcD1eFg HTTP/1.1", "GET /api/v1/t/[token] HTTP/1.1"),
])
def test_redaction_masks_phones_emails_and_tokens(text: str, masked: str) -> None:
    assert logs.redact(text) == masked


@pytest.mark.parametrize("kept", [
    "qtraq_live.workers.delivery_log", "test_a_real_server_logs_json_lines0", "hub-rebuild-clinic-main",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "stream entry 1764050000123-0",
    "ticket 42 called at counter 3", "version 17 of clinic c1",
    "redis.exceptions.ConnectionError: UnixDomainSocketConnection refused",
])
def test_redaction_leaves_ordinary_text_alone(kept: str) -> None:
    assert logs.redact(kept) == kept


def test_token_shaped_strings_are_masked_whatever_their_letters() -> None:
    alphabet = string.ascii_letters + string.digits + "-_"
    rng = random.Random(7)  # fixed: the same thousands of tokens on every run
    tokens = ["".join(rng.choice(alphabet) for _ in range(32)) for _ in range(5000)]
    assert all(logs.redact(f"token {t} read") == "token [token] read" for t in tokens)


def test_filters_cover_args_extras_and_tracebacks() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs.RequestIdFilter())
    handler.addFilter(logs.RedactFilter())
    handler.setFormatter(logs.JsonFormatter())
    token = logs.REQUEST_ID.set("req-1")
    try:
        handler.handle(_record("notice to %s", "+919800000001", to="a@b.example", attempt=2))
        try:
            raise ValueError("bad recipient +919800000002")
        except ValueError:
            record = _record("send failed")
            record.exc_info = sys.exc_info()
            handler.handle(record)
    finally:
        logs.REQUEST_ID.reset(token)
    handler.handle(_record("outside any request"))
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "notice to [phone]" and first["to"] == "[email]" and first["attempt"] == 2
    assert first["request_id"] == "req-1" and first["level"] == "warning" and first["logger"] == "qtraq_live.test"
    assert "ValueError: bad recipient [phone]" in second["exc"]
    assert "request_id" not in third


def test_text_format_and_settings(settings: Settings) -> None:
    config = logs.logging_config(settings.replace(log_format="text", log_level="warning"))
    assert config["root"]["level"] == "WARNING"
    assert config["formatters"]["line"]["()"].endswith("TextFormatter")
    assert not sys.stderr.isatty()  # pytest captures it: "auto" means JSON here, as under systemd
    assert logs.logging_config(settings)["formatters"]["line"]["()"].endswith("JsonFormatter")
    formatter = logs.TextFormatter()
    record = _record("hello")
    record.request_id = "abc"
    assert formatter.format(record).endswith("qtraq_live.test: hello [request abc]")
