"""The OpenAPI document: valid 3.1, complete, and tied to the schemas the endpoints really use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from starlette.routing import Route

from qtraq_live.validation import Schema
from qtraq_live.web import openapi
from qtraq_live.web.app import API_ROUTES
from qtraq_live.web.openapi import OPERATIONS, PREFIX, SCHEMAS, Op

from tests.support_accounts import Patient, portal, register  # noqa: F401
from tests.support_http import LiveServer

DOC = openapi.document(API_ROUTES)
BODY_OPS = [(key, op) for key, op in OPERATIONS.items() if op.body is not None]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_document_is_valid_openapi_3_1() -> None:
    validate_spec(DOC)  # the OpenAPI 3.1 meta-schema, with its JSON Schema 2020-12 dialect
    assert DOC["openapi"].startswith("3.1") and {"info", "paths", "components"} <= DOC.keys()
    refs = set(_refs(DOC))
    assert refs, "the document uses no $ref at all"
    for ref in refs:
        _resolve(ref)  # KeyError when a $ref points nowhere
    for path, methods in DOC["paths"].items():
        named = set(re.findall(r"{([^}]+)}", path))
        for op in methods.values():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == named, (path, declared)
            assert all(code == "200" or code == "201" or "$ref" in r for code, r in op["responses"].items())


def test_every_api_route_has_exactly_one_entry() -> None:
    served = {(method, path) for method, path, _ in openapi.route_operations(API_ROUTES)}
    assert served == set(OPERATIONS), {"undocumented": served - set(OPERATIONS),
                                        "stale": set(OPERATIONS) - served}
    assert {p[len(PREFIX):] for p in DOC["paths"]} == {path for _, path in served}
    assert all(op.who in openapi.WHO for op in OPERATIONS.values())


def test_a_route_without_an_entry_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    doc = openapi.document([*API_ROUTES, Route("/nowhere", lambda r: None, methods=["GET"])])
    assert f"{PREFIX}/nowhere" not in doc["paths"] and doc["paths"].keys() == DOC["paths"].keys()
    assert "GET /nowhere has no entry" in caplog.text


def test_components_are_the_validating_schemas_and_errors_have_the_api_shape() -> None:
    for name, schema in SCHEMAS.items():
        assert DOC["components"]["schemas"][name] == schema.json_schema()
    error = DOC["components"]["schemas"]["Error"]
    jsonschema.validate({"error": {"code": "not_found", "message": "unknown ticket"}}, error)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"detail": "nope"}, error)
    secured = DOC["paths"][f"{PREFIX}/queues/{{queue}}/next"]["post"]["security"]
    assert {"session": [], "csrf": []} in secured and {"bearer": []} in secured
    assert DOC["paths"][f"{PREFIX}/t/{{token}}"]["get"]["security"] == []


@pytest.mark.parametrize(("key", "op"), BODY_OPS, ids=[f"{m} {p}" for (m, p), _ in BODY_OPS])
def test_each_example_validates(key: tuple[str, str], op: Op) -> None:
    assert op.example is not None, f"{key} documents a body without an example"
    assert op.body is not None
    op.body.validate(op.example)  # the server's own check
    component = DOC["components"]["schemas"][openapi.schema_name(op.body)]
    jsonschema.Draft202012Validator(component).validate(op.example)  # and the published one


# -- the live app ---------------------------------------------------------------------------------

def _path(template: str, values: dict[str, str]) -> str:
    return re.sub(r"{([^}]+)}", lambda m: values[m[1]], template)


def test_every_body_is_validated_with_the_documented_schema(portal: LiveServer,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Send each documented example to the real endpoint, with fitting credentials, and
    record which Schema object checked the body: it must be the documented one."""
    seen: list[Schema] = []
    passed: list[Schema] = []
    original = Schema.validate

    def recording(self: Schema, data: Any, *, prefix: str = "") -> dict[str, Any]:
        if prefix:  # a nested object, not the body itself
            return original(self, data, prefix=prefix)
        seen.append(self)
        checked = original(self, data, prefix=prefix)
        passed.append(self)
        return checked

    monkeypatch.setattr(Schema, "validate", recording)
    admin = portal.bearer("admin")
    patient: Patient = register(portal)
    issued = admin.post("/queues/gp/tickets", json={})
    assert issued.status_code == 201, issued.text
    values = {"clinic": "c1", "queue": "gp", "ticket_id": str(issued.json()["ticket"]["id"]),
              "token": issued.json()["ticket"]["token"], "patient": "1", "appointment": "1", "key_id": "1", "id": "1",
              "user": "1", "token_id": "1", "session": "1", "counter": "1"}
    public = portal.client()
    for (method, path), op in BODY_OPS:
        client: httpx.Client = {"public": public, "token": public, "account": patient.client}.get(op.who, admin)
        seen.clear()
        passed.clear()
        r = client.request(method, _path(path, values), json=op.example)
        assert seen and seen[0] is op.body, (method, path, r.status_code, r.text)
        assert passed and passed[0] is op.body, (method, path, r.text)  # the example passed the endpoint's check


def test_document_and_docs_page_are_served_publicly(portal: LiveServer) -> None:  # noqa: F811
    r = httpx.get(portal.api("/openapi.json"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == DOC
    page = httpx.get(portal.url + "/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script src=\"http" not in page.text  # nothing from a CDN
    for path, methods in DOC["paths"].items():
        for method in methods:
            assert f"{method.upper()} {path}" in page.text
    assert "TicketIssue" in page.text and "+919812345678" in page.text  # body table and example
