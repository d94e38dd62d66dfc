"""Incoming messages from the two gateways, as :class:`Message` values.

* SMS: our generic gateway form, JSON or ``application/x-www-form-urlencoded``, fields
  ``from`` and ``text`` and an optional ``id`` (the gateway's message id; without one, the raw
  body stands in for it, so a gateway's retry of the same post is still recognised).
* WhatsApp: the Cloud API webhook (``object: whatsapp_business_account``, ``entry[].changes[]
  .value.messages[]``; a message is ``{from, id, timestamp, type, text: {body}}``, a quick-reply
  button ``{type: "button", button: {text}}``, an interactive reply ``{type: "interactive",
  interactive: {button_reply: {title}}}``). Delivery ``statuses`` and other fields carry no
  message and are skipped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ..errors import BadRequest, Invalid
from ..validation import E164

TEXT_MAX = 1000  # longer texts are cut: no keyword needs more
ID_MAX = 200
_E164 = re.compile(E164)
DEFAULT_COUNTRY = "91"  # a bare 10-digit number is Indian (a gateway's local format)


@dataclass(frozen=True)
class Message:
    channel: str  # sms | whatsapp
    id: str  # the gateway's message id: what makes a retry harmless
    sender: str | None  # E.164, or None when the number cannot be read
    text: str


def e164(raw: str) -> str | None:
    """``+919812345678`` from the forms gateways use (``919812345678``, ``09812345678``, ``98123 45678``)."""
    digits = re.sub(r"\D", "", raw)
    text = raw.strip()
    if text.startswith("00"):
        digits = digits[2:]
    elif not text.startswith("+"):
        if len(digits) == 10:
            digits = DEFAULT_COUNTRY + digits
        elif len(digits) == 11 and digits.startswith("0"):
            digits = DEFAULT_COUNTRY + digits[1:]
    number = "+" + digits
    return number if _E164.match(number) else None


def _string(data: dict[str, Any], name: str, max_len: int, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid(name, "must be a non-empty string")
    if len(value) > max_len:
        raise Invalid(name, f"must be at most {max_len} characters")
    return value


def sms_message(raw: bytes, content_type: str) -> Message:
    """The one message of an SMS gateway post; 400/422 (naming the field) when it is malformed."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("form body is not valid", code="bad_form") from None
        data: Any = {k: v[0] for k, v in form.items()}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest("request body is not valid JSON", code="bad_json") from None
    if not isinstance(data, dict):
        raise Invalid("body", "must be an object with from and text")
    for name in data:
        if name not in ("from", "text", "id"):
            raise Invalid(name, "unknown field")
    sender = _string(data, "from", 32)
    text = _string(data, "text", TEXT_MAX)
    given = _string(data, "id", ID_MAX, required=False)
    assert sender is not None and text is not None
    return Message("sms", given or "body-" + hashlib.sha256(raw).hexdigest(), e164(sender), text)


def _whatsapp_text(msg: dict[str, Any]) -> str:
    kind = msg.get("type")
    part = msg.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return ""
    if kind == "text":
        value = part.get("body")
    elif kind == "button":
        value = part.get("text") or part.get("payload")
    elif kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply") or {}
        value = reply.get("title") if isinstance(reply, dict) else None
    else:
        value = None  # images, audio, locations: answered with the help text
    return value[:TEXT_MAX] if isinstance(value, str) else ""


def whatsapp_messages(raw: bytes) -> list[Message]:
    """Every message of a webhook post, in order; 400 when the body is not the documented shape."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("request body is not valid JSON", code="bad_json") from None
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account" \
            or not isinstance(data.get("entry"), list):
        raise BadRequest("not a WhatsApp Business Account webhook", code="bad_payload")
    out: list[Message] = []
    for entry in data["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            messages = value.get("messages") if isinstance(value, dict) else None
            for msg in messages if isinstance(messages, list) else []:
                if not isinstance(msg, dict) or not isinstance(msg.get("id"), str) \
                        or not isinstance(msg.get("from"), str) or len(msg["id"]) > ID_MAX:
                    continue
                out.append(Message("whatsapp", msg["id"], e164("+" + msg["from"].lstrip("+")), _whatsapp_text(msg)))
    return out
