"""The declarative body schemas: every rejection names its field; JSON Schema comes out."""

from __future__ import annotations

import pytest

from qtraq_live.errors import Invalid
from qtraq_live.validation import E164, EMAIL, Field, Schema

PERSON = Schema({
    "name": Field("string", required=True, min_length=1, max_length=10),
    "age": Field("integer", minimum=0, maximum=130),
    "mobile": Field("string", nullable=True, pattern=E164),
    "email": Field("string", max_length=254, pattern=EMAIL),
    "notify": Field("boolean", default=False),
    "kind": Field("string", enum=("a", "b"), default="a"),
    "tags": Field("array", max_length=2, items=Field("string", max_length=3)),
    "consent": Field("object", schema=Schema({"sms": Field("boolean", required=True)})),
})


def test_valid_body_gets_defaults() -> None:
    assert PERSON.validate({"name": "Asha", "age": 30}) == {
        "name": "Asha", "age": 30, "mobile": None, "email": None, "notify": False, "kind": "a",
        "tags": None, "consent": None}


@pytest.mark.parametrize(("body", "field", "code"), [
    ({}, "name", "missing_field"),
    ({"name": "Asha", "colour": "red"}, "colour", "unknown_field"),
    ({"name": 5}, "name", "invalid_field"),
    ({"name": ""}, "name", "invalid_field"),
    ({"name": "x" * 11}, "name", "invalid_field"),
    ({"name": "A\x00b"}, "name", "invalid_field"),
    ({"name": None}, "name", "invalid_field"),
    ({"name": "A", "age": True}, "age", "invalid_field"),  # a JSON boolean is not an integer
    ({"name": "A", "age": 1.5}, "age", "invalid_field"),
    ({"name": "A", "age": -1}, "age", "invalid_field"),
    ({"name": "A", "age": 131}, "age", "invalid_field"),
    ({"name": "A", "notify": 1}, "notify", "invalid_field"),
    ({"name": "A", "kind": "c"}, "kind", "invalid_field"),
    ({"name": "A", "mobile": "9812345678"}, "mobile", "invalid_field"),
    ({"name": "A", "mobile": "+0812345678"}, "mobile", "invalid_field"),
    ({"name": "A", "email": "no-at-sign.example.com"}, "email", "invalid_field"),
    ({"name": "A", "email": "a@b"}, "email", "invalid_field"),
    ({"name": "A", "email": "a@" + "b" * 250 + ".in"}, "email", "invalid_field"),
    ({"name": "A", "tags": ["a", "b", "c"]}, "tags", "invalid_field"),
    ({"name": "A", "tags": ["long"]}, "tags[0]", "invalid_field"),
    ({"name": "A", "consent": {}}, "consent.sms", "missing_field"),
    ({"name": "A", "consent": {"sms": True, "x": 1}}, "consent.x", "unknown_field"),
    ({"name": "A", "consent": []}, "consent", "invalid_field"),
])
def test_rejections_name_the_field(body: dict[str, object], field: str, code: str) -> None:
    with pytest.raises(Invalid) as caught:
        PERSON.validate(body)
    assert caught.value.field == field
    assert caught.value.code == code
    assert caught.value.status == 422
    assert caught.value.message.startswith(f"{field}: ")


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_non_object_body_is_invalid(body: object) -> None:
    with pytest.raises(Invalid) as caught:
        PERSON.validate(body)
    assert (caught.value.field, caught.value.code) == ("body", "invalid_body")


def test_good_contacts_pass() -> None:
    body = PERSON.validate({"name": "A", "mobile": "+919812345678", "email": "asha.k+q@mail.example.in"})
    assert body["mobile"] == "+919812345678"
    assert PERSON.validate({"name": "A", "mobile": None})["mobile"] is None


def test_json_schema_describes_the_same_rules() -> None:
    doc = PERSON.json_schema()
    assert doc["type"] == "object"
    assert doc["additionalProperties"] is False
    assert doc["required"] == ["name"]
    props = doc["properties"]
    assert props["name"] == {"type": "string", "minLength": 1, "maxLength": 10}
    assert props["age"] == {"type": "integer", "minimum": 0, "maximum": 130}
    assert props["mobile"] == {"type": ["string", "null"], "pattern": E164}
    assert props["kind"] == {"type": "string", "enum": ["a", "b"], "default": "a"}
    assert props["tags"] == {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}}
    assert props["consent"]["properties"]["sms"] == {"type": "boolean"}
    assert props["consent"]["required"] == ["sms"]


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Field("date")
