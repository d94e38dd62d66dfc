"""The HTTP plumbing: error shapes, headers, body limit, the hub role, health and metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette import responses
from starlette.responses import Response
from starlette.routing import Route

from qtraq_live.config import Settings
from qtraq_live.errors import ConfigError
from qtraq_live.web import errors as web_errors
from qtraq_live.web.app import create_app
from qtraq_live.web.responses import JSONResponse

from tests.support_http import LiveServer, StartServer, app_server, error_of, start_server  # noqa: F401


def test_router_errors_are_json_under_api_and_a_page_elsewhere(app_server: LiveServer) -> None:
    c = app_server.client()
    assert error_of(c.get("/no/such/thing")) == (404, "not_found")
    assert error_of(c.put("/clinics", json={})) == (405, "method_not_allowed")
    page = httpx.get(app_server.url + "/no-such-page", headers={"Accept-Language": "hi"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="hi">' in page.text and "पेज नहीं मिला" in page.text  # in the visitor's language


def test_security_headers_and_request_id(app_server: LiveServer) -> None:
    r = app_server.client().get("/clinics/c1", headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    minted = httpx.get(app_server.url + "/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(minted.headers["x-request-id"]) == 32 and " " not in minted.headers["x-request-id"]


def test_bodies_over_the_limit_are_413(app_server: LiveServer) -> None:
    desk = app_server.bearer("admin")
    limit = app_server.settings["server.max_body_bytes"]
    big = b'{"name": "' + b"x" * limit + b'"}'
    assert error_of(desk.post("/clinics", content=big)) == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    assert error_of(desk.post("/clinics", content=chunks())) == (413, "payload_too_large")
    assert app_server.run(app_server.engine.clinic_ids()) == []


def test_health_and_readiness(app_server: LiveServer) -> None:
    assert httpx.get(app_server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(app_server.url + "/readyz").json() == {"status": "ready", "role": "all"}


def test_metrics_count_requests_presses_and_tickets_without_secrets(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    desk = app_server.bearer("reception")
    token = desk.post("/queues/gp/tickets", json={}).json()["ticket"]["token"]
    desk.post("/queues/gp/next")
    app_server.client().get(f"/t/{token}")
    text = httpx.get(app_server.url + "/metrics").text
    assert 'qtraq_http_requests_total{method="POST",route="/api/v1/queues/{queue}/next",status="200"}' in text
    assert 'qtraq_http_requests_total{method="GET",route="/api/v1/t/{token}",status="200"}' in text
    assert "qtraq_press_seconds_count" in text
    assert 'qtraq_tickets_issued_total{via="reception"}' in text
    assert token not in text


@pytest.fixture
def hub(start_server: StartServer, tmp_path: Path, app_server: LiveServer) -> LiveServer:
    """A ``--role hub`` server on its own empty data dir, sharing the primary's Redis."""
    return start_server("hub", data_dir=str(tmp_path / "hub"))


def test_hub_serves_reads_from_redis_and_refuses_writes(app_server: LiveServer, hub: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    primary = app_server.staff("reception")
    token = primary.post("/queues/gp/tickets", json={}).json()["ticket"]["token"]
    on_hub = hub.client(cookies=dict(primary.cookies), headers=dict(primary.headers))
    assert on_hub.get("/queues/gp").json()["waiting"][0]["label"] == "A-001"
    assert on_hub.get("/clinics/c1").json()["queues"][0]["id"] == "gp"
    assert on_hub.get("/auth/me").json()["user"]["role"] == "reception"
    assert hub.client().get(f"/t/{token}").json()["label"] == "A-001"
    for method, path in (("POST", "/queues/gp/next"), ("POST", "/auth/login"), ("DELETE", f"/t/{token}"),
                         ("PATCH", "/queues/gp"), ("POST", "/public/queues/gp/join")):
        assert error_of(on_hub.request(method, path, json={})) == (421, "write_on_hub")
    assert httpx.get(hub.url + "/readyz").json() == {"status": "ready", "role": "hub"}
    assert not (Path(hub.settings.data_dir) / "qtraq.db").exists()


def test_readyz_is_503_when_redis_is_unreachable(start_server: StartServer, tmp_path: Path) -> None:
    live = start_server(redis_url=f"unix://{tmp_path}/nobody-listens.sock")
    assert httpx.get(live.url + "/healthz").status_code == 200
    r = httpx.get(live.url + "/readyz")
    assert error_of(r) == (503, "unavailable")
    assert "redis" in r.json()["error"]["message"]
    assert error_of(live.client().get("/t/" + "x" * 32)) == (503, "unavailable")
    assert error_of(live.client(headers={"Authorization": "Bearer " + "y" * 43}).get("/queues/gp")) == (
        503, "unavailable")


@pytest.mark.parametrize("raw", [b"NaN", b'{"counter": Infinity}', b'{"n": 1' + b"0" * 5000 + b"}",
                                 b"[" * 30000 + b"]" * 30000, b'{"counter": "1"'])
def test_hostile_json_is_400(app_server: LiveServer, raw: bytes) -> None:
    app_server.clinic("c1", ("gp",))
    desk = app_server.bearer("reception")
    r = desk.post("/queues/gp/next", content=raw, headers={"Content-Type": "application/json"})
    assert error_of(r) == (400, "bad_json")


async def test_unexpected_errors_are_a_bare_500() -> None:
    """The handler table turns any bug into the error shape, with no trace or detail."""

    async def boom(request: Request) -> Response:
        raise RuntimeError("secret detail /srv/qtraq/app.py line 3")

    app = Starlette(routes=[Route("/api/v1/boom", boom)], exception_handlers=web_errors.exception_handlers())
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/api/v1/boom")
    assert error_of(r) == (500, "internal_error")
    assert "secret" not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("content", [{"called": {"id": 7, "label": "A-007", "name": "Ünal\u2028\x01", "eta_s": None,
                                                "notify": True, "avg": 12.5}},
                                     {1: "int keys", None: "null key"}, [2**70, "beyond 64 bits"], [], "text"])
def test_json_answers_are_written_as_starlette_writes_them(content: object) -> None:
    assert JSONResponse(content).body == responses.JSONResponse(content).body


def test_json_answers_refuse_what_starlette_refuses() -> None:
    with pytest.raises(TypeError):
        JSONResponse({"at": datetime.now(timezone.utc)})


def test_a_bad_trusted_proxy_entry_fails_at_start(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="security.trusted_proxies"):
        create_app(settings.replace(security__trusted_proxies=["proxy.local"]))
