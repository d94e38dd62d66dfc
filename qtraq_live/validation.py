"""Request body schemas: one small declarative table per endpoint, kept next to it.

A :class:`Schema` checks a decoded JSON body and answers :class:`Invalid` (422) naming the
first bad field; it rejects unknown fields (code ``unknown_field``) so a typo never passes
silently. The same table emits JSON Schema, so an OpenAPI document can be generated from
the code rather than written beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Invalid

Json = dict[str, Any]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}

E164 = r"^\+[1-9]\d{7,14}$"
# Deliberately simple: one @, something before it, a dotted domain, no spaces or angle brackets.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
EMAIL = rf"^[^@\s<>\"]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"
SLUG = r"^[a-z0-9][a-z0-9-]{0,39}$"
NAME_MAX = 80  # a name people type: a patient's, a nominee's, a clinic's or a queue's
EMAIL_MAX = 254  # the longest address a mail server takes (RFC 5321's path limit)


def _is_kind(value: Any, kind: str) -> bool:
    # bool is an int in Python; JSON keeps them apart and so do we.
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[kind])


@dataclass(frozen=True)
class Field:
    """One body field. ``kind`` is a JSON Schema type name."""

    kind: str
    required: bool = False
    nullable: bool = False
    default: Any = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[Any, ...] | None = None
    items: Field | None = None  # arrays
    schema: Schema | None = None  # nested objects
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _JSON_TYPES:
            raise ValueError(f"unknown field kind {self.kind!r}")

    def check(self, name: str, value: Any) -> Any:
        """The value if it fits, else :class:`Invalid` naming ``name``."""
        if value is None:
            if self.nullable:
                return None
            raise Invalid(name, "must not be null")
        if not _is_kind(value, self.kind):
            raise Invalid(name, f"must be of type {self.kind}")
        if self.enum is not None and value not in self.enum:
            raise Invalid(name, "must be one of " + ", ".join(str(e) for e in self.enum))
        if self.minimum is not None and value < self.minimum:
            raise Invalid(name, f"must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise Invalid(name, f"must be at most {self.maximum}")
        if self.min_length is not None and len(value) < self.min_length:
            raise Invalid(name, f"must have at least {self.min_length} characters" if self.kind == "string"
                          else f"must have at least {self.min_length} items")
        if self.max_length is not None and len(value) > self.max_length:
            raise Invalid(name, f"must have at most {self.max_length} characters" if self.kind == "string"
                          else f"must have at most {self.max_length} items")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise Invalid(name, "has an invalid format")
        if self.kind == "string" and any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise Invalid(name, "must not contain control characters")
        if self.items is not None:
            return [self.items.check(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if self.schema is not None:
            return self.schema.validate(value, prefix=f"{name}.")
        return value

    def _accepts(self, value: Any) -> bool:
        try:
            self.check("default", value)
        except Invalid:
            return False
        return True

    def json_schema(self) -> Json:
        out: Json = {"type": [self.kind, "null"] if self.nullable else self.kind}
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum),
                           ("pattern", self.pattern), ("description", self.description or None)):
            if value is not None:
                out[key] = value
        length_keys = ("minLength", "maxLength") if self.kind == "string" else ("minItems", "maxItems")
        for key, value in zip(length_keys, (self.min_length, self.max_length)):
            if value is not None:
                out[key] = value
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.default is not None and self._accepts(self.default):  # not a sentinel for "absent"
            out["default"] = self.default
        if self.items is not None:
            out["items"] = self.items.json_schema()
        if self.schema is not None:
            out.update(self.schema.json_schema())
        return out


@dataclass(frozen=True)
class Schema:
    """An object body: named fields, nothing else allowed."""

    fields: Mapping[str, Field] = field(default_factory=dict)

    def validate(self, data: Any, *, prefix: str = "") -> Json:
        """The checked body with defaults filled in for absent optional fields."""
        if not isinstance(data, dict):
            raise Invalid(prefix.rstrip(".") or "body", "must be a JSON object", code="invalid_body")
        for name in data:
            if name not in self.fields:
                raise Invalid(f"{prefix}{name}", "unknown field", code="unknown_field")
        out: Json = {}
        for name, spec in self.fields.items():
            if name in data:
                out[name] = spec.check(f"{prefix}{name}", data[name])
            elif spec.required:
                raise Invalid(f"{prefix}{name}", "is required", code="missing_field")
            else:
                out[name] = spec.default
        return out

    def json_schema(self) -> Json:
        return {
            "type": "object",
            "properties": {name: spec.json_schema() for name, spec in self.fields.items()},
            "required": [name for name, spec in self.fields.items() if spec.required],
            "additionalProperties": False,
        }


EMPTY = Schema({})  # endpoints that take no body still refuse one with fields
