"""Request helpers: the JSON body through its schema, query parameters, the client's address."""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Collection
from typing import Any, TypeVar

from starlette.requests import Request

from ..config import Settings
from ..errors import BadRequest, ConfigError, Invalid, UnsupportedMediaType
from ..validation import Schema

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
D = TypeVar("D", int, None)


async def read_json(request: Request, schema: Schema) -> dict[str, Any]:
    """The body checked against ``schema``; an empty body counts as ``{}`` (all optional).

    Malformed JSON is a 400 ``bad_json``; anything that parses but does not fit is a 422. A
    body must say ``Content-Type: application/json`` (415 otherwise): a cross-site HTML form can
    send only form or ``text/plain`` bodies without a CORS preflight, so this stops them here.
    """
    raw = await request.body()
    if not raw.strip():
        data: Any = {}
    elif not is_json_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaType("send the body as Content-Type: application/json")
    else:
        try:
            data = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))  # as json.loads
        except (ValueError, RecursionError):  # bad UTF-8 or JSON, huge integers, deep nesting
            raise BadRequest("request body is not valid JSON", code="bad_json") from None
    return schema.validate(data)


def is_json_type(content_type: str) -> bool:
    """``application/json`` (or a ``+json`` type), parameters such as charset allowed."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)  # json.loads with a hook builds one per call


def known_params(request: Request, allowed: Collection[str]) -> None:
    """422 naming the first query parameter that is not in ``allowed``."""
    unknown = set(request.query_params) - set(allowed)
    if unknown:
        raise Invalid(sorted(unknown)[0], "unknown query parameter")


def query_int(request: Request, name: str, low: int, high: int, default: D) -> int | D:
    """The query parameter ``name`` as an integer from ``low`` to ``high`` (422 otherwise), or
    ``default`` when it is absent (paging: ``limit``, ``before``)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Invalid(name, f"must be an integer from {low} to {high}")
    return int(raw)


def public_base(request: Request) -> str:
    """The base URL for links and QR codes: ``server.public_url``, else the address this server
    is bound to. Never the request's ``Host`` header, which the client chooses (a link in a
    notice or on a poster must not point wherever a forged header says)."""
    configured: str = request.app.state.settings["server.public_url"]
    if configured:
        return configured.rstrip("/")
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    scheme = "https" if request.scope.get("scheme") == "https" else "http"
    host = f"[{host}]" if ":" in str(host) else host
    return f"{scheme}://{host}" + ("" if (scheme, port) in (("http", 80), ("https", 443)) else f":{port}")


def client_ip(request: Request) -> str:
    """The caller's address. ``X-Forwarded-For`` is believed only from a trusted proxy
    (addresses or networks in ``security.trusted_proxies``), and then read from the right,
    skipping the proxies themselves."""
    peer = request.client.host if request.client else ""
    trusted = trusted_networks(request.app.state.settings)
    if not trusted or not _within(peer, trusted):  # no proxies: the peer, without parsing it
        return peer or "unknown"
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",") if p.strip()]
    for hop in reversed(forwarded):
        if not _within(hop, trusted):
            return hop if _address(hop) else peer
    return peer


def trusted_networks(settings: Settings) -> tuple[IPNetwork, ...]:
    """``security.trusted_proxies`` as networks; a bad entry is a ConfigError at start."""
    try:
        return _networks(tuple(settings["security.trusted_proxies"]))
    except ValueError as exc:
        raise ConfigError("security.trusted_proxies", str(exc)) from None


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def address_within(text: str, entries: list[str], key: str) -> bool:
    """Is the address ``text`` inside one of the networks or addresses in ``entries`` (the
    setting ``key``, named in the ConfigError a bad entry raises)?"""
    try:
        return _within(text, _networks(tuple(entries)))
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(text: str, networks: tuple[IPNetwork, ...]) -> bool:
    addr = _address(text)
    return addr is not None and any(addr in net for net in networks)
