"""The ABDM HIECM v3 Scan & Share protocol, as the public sources describe it; no I/O here.

Sources: the NHA's ABDM-wrapper (``v3/hip/hrp/share``: ``ProfileShareV3Request``,
``OnShareV3Request``, ``RequestV3Manager``, ``SessionManager``), ohcnetwork/care_abdm
(``api/v3/viewsets/hip.py``, ``service/v3/gateway.py``, ``authentication.py``) and the NHA
sandbox documentation they cite. docs/abdm.md says which parts could not be checked against the
sandbox itself.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from ..errors import Invalid
from ..validation import NAME_MAX

# Paths on the gateway (appended to ``abdm.gateway_url``) and on our bridge.
SESSIONS_PATH = "/api/hiecm/gateway/v3/sessions"
CERTS_PATH = "/api/hiecm/gateway/v3/certs"
ON_SHARE_PATH = "/api/hiecm/patient-share/v3/on-share"
SHARE_CALLBACK_PATH = "/api/v3/hip/patient/share"

DEDUPE_S = 30 * 60  # a repeat share of one (hipId, counter, ABHA address) gets the same ticket
INTENT = "PROFILE_SHARE"
GENDERS = ("M", "F", "O", "D", "T", "U")  # the NHA docs' list; the app sends M, F or O
TEXT_MAX = 250  # the docs' longest field (metaData.context)


class ShareError(Exception):
    """A share we answer with an on-share ``error`` (the caller already has its 202)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def timestamp(now: float) -> str:
    """``TIMESTAMP``: UTC, ISO 8601 with milliseconds and ``Z`` (2026-12-07T10:10:00.587Z)."""
    return datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def headers(cm_id: str, now: float, request_id: str | None = None) -> dict[str, str]:
    """The headers every gateway call carries (a new ``REQUEST-ID`` unless given)."""
    return {"REQUEST-ID": request_id or str(uuid.uuid4()), "TIMESTAMP": timestamp(now), "X-CM-ID": cm_id,
            "Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True)
class Share:
    """A ``PROFILE_SHARE`` callback: who shared, at which counter of which facility."""

    hip_id: str
    context: str  # the counter id from the QR
    hpr_id: str | None
    abha_address: str
    abha_number: str | None
    name: str
    gender: str
    year_of_birth: int
    month_of_birth: int | None
    day_of_birth: int | None
    phone: str | None  # E.164, or None when absent or not a phone number
    address_line: str | None
    district: str | None
    state: str | None
    pincode: str | None

    def dedupe_digest(self) -> str:
        """Names the (hipId, counter, ABHA address) without putting the address in a Redis key."""
        raw = "\x1f".join((self.hip_id, self.context, self.abha_address.lower()))
        return hashlib.sha256(raw.encode()).hexdigest()[:40]

    def age(self, today: date) -> int:
        """Completed years; the birthday this year counts as past when day or month is unknown."""
        month, day = self.month_of_birth or 1, self.day_of_birth or 1
        return today.year - self.year_of_birth - ((today.month, today.day) < (month, day))


def _text(value: Any, field: str, *, required: bool = True, max_len: int = TEXT_MAX) -> str | None:
    """A string field: present (when required), not blank, no control characters, bounded."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Invalid(field, "is required")
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    value = value.strip()
    if len(value) > max_len:
        raise Invalid(field, f"must be at most {max_len} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise Invalid(field, "must not contain control characters")
    return value


def _number(value: Any, field: str, lo: int, hi: int, *, required: bool) -> int | None:
    """The docs send these as strings ("11"), care_abdm reads integers: both are accepted."""
    text = _text(value, field, required=required, max_len=4)
    if text is None:
        return None
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise Invalid(field, f"must be a number from {lo} to {hi}")
    return int(text)


def _object(value: Any, field: str, *, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Invalid(field, "must be an object")
    return value


_PHONE = re.compile(r"^\+?(?:91)?[- ]?(\d{10})$")


def e164(phone: str | None) -> str | None:
    """An Indian mobile as ABDM sends it (``9876543210``, ``+91 9876543210``) → ``+919876543210``."""
    if not phone:
        return None
    m = _PHONE.match(phone.replace(" ", "").replace("-", ""))
    return f"+91{m.group(1)}" if m and m.group(1)[0] in "6789" else None


def _mobile_identifier(identifiers: Any) -> str | None:
    """The wrapper's ``PatientV3Details`` may carry the phone as ``identifiers: [{type: MOBILE}]``."""
    if not isinstance(identifiers, list):
        return None
    for item in identifiers:
        if isinstance(item, dict) and item.get("type") == "MOBILE" and isinstance(item.get("value"), str):
            return item["value"][:20]
    return None


def parse_share(body: Any) -> Share:
    """The share callback's body → :class:`Share`; :class:`Invalid` names the first bad field.
    Fields this bridge does not use (``identifiers``, a photo…) are ignored, not refused: the
    gateway adds fields over time and a refused share leaves the patient without a token."""
    body = _object(body, "body")
    if body.get("intent") != INTENT:
        raise Invalid("intent", f"must be {INTENT}")
    meta = _object(body.get("metaData"), "metaData")
    patient = _object(_object(body.get("profile"), "profile").get("patient"), "profile.patient")
    address = _object(patient.get("address"), "profile.patient.address", required=False)
    gender = _text(patient.get("gender"), "profile.patient.gender")
    if gender not in GENDERS:
        raise Invalid("profile.patient.gender", "must be one of " + ", ".join(GENDERS))
    p = "profile.patient."
    return Share(
        hip_id=str(_text(meta.get("hipId"), "metaData.hipId", max_len=64)),
        context=str(_text(meta.get("context"), "metaData.context")),
        hpr_id=_text(meta.get("hprId"), "metaData.hprId", required=False, max_len=64),
        abha_address=str(_text(patient.get("abhaAddress"), p + "abhaAddress", max_len=100)),
        abha_number=_text(patient.get("abhaNumber"), p + "abhaNumber", required=False, max_len=20),
        name=str(_text(patient.get("name"), p + "name", max_len=NAME_MAX)),
        gender=gender,
        year_of_birth=int(_number(patient.get("yearOfBirth"), p + "yearOfBirth", 1900, 2200, required=True) or 0),
        month_of_birth=_number(patient.get("monthOfBirth"), p + "monthOfBirth", 1, 12, required=False),
        day_of_birth=_number(patient.get("dayOfBirth"), p + "dayOfBirth", 1, 31, required=False),
        phone=e164(_text(patient.get("phoneNumber"), p + "phoneNumber", required=False, max_len=20)
                   or _mobile_identifier(patient.get("identifiers"))),
        address_line=_text(address.get("line"), p + "address.line", required=False),
        district=_text(address.get("district"), p + "address.district", required=False, max_len=80),
        state=_text(address.get("state"), p + "address.state", required=False, max_len=80),
        pincode=_text(address.get("pincode") or address.get("pinCode"), p + "address.pincode",
                      required=False, max_len=10),
    )


def on_share_success(request_id: str, abha_address: str, context: str, token_number: str, expiry_s: int) -> dict[str, Any]:
    """The reply that gives the ABHA app its token (wrapper ``OnShareV3Request``, care_abdm
    ``patient_share__on_share``): ``expiry`` is how long the token stays valid, in seconds."""
    return {"acknowledgement": {"status": "SUCCESS", "abhaAddress": abha_address,
                                "profile": {"context": context, "tokenNumber": token_number,
                                            "expiry": str(expiry_s)}},
            "response": {"requestId": request_id}}


def on_share_error(request_id: str, code: str, message: str) -> dict[str, Any]:
    """The reply when no token could be given (wrapper: ``error`` beside ``response``)."""
    return {"error": {"code": code, "message": message}, "response": {"requestId": request_id}}
