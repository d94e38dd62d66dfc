"""Sign-in with an OpenID Connect provider against the running server and a local stand-in
provider (tests/support_oidc.py): the code flow with PKCE, linking by verified email only, and
the abuse cases: unverified emails, forged or misaddressed id_tokens, a replayed code, a
callback planted in another browser."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from qtraq_live.config import Settings
from tests.support_accounts import codes_sent, fast_account_hashes, register, verify, with_channels
from tests.support_http import LiveServer, error_of, live_server, use_fast_hashes
from tests.support_oidc import CLIENT_ID, CLIENT_SECRET, Provider, oidc_provider

EMAIL = "asha@mail.example"


@pytest.fixture
def provider() -> Iterator[Provider]:
    with oidc_provider() as p:
        yield p


@pytest.fixture
def site(settings: Settings, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    use_fast_hashes(monkeypatch)
    fast_account_hashes(monkeypatch)
    configured = with_channels(settings).replace(accounts__oidc__issuer=provider.url, accounts__oidc__client_id=CLIENT_ID,
                                                 accounts__oidc__client_secret=CLIENT_SECRET)
    with live_server(configured) as live:
        yield live


def browser(live: LiveServer) -> httpx.Client:
    c = httpx.Client(base_url=live.url, follow_redirects=True, timeout=10.0)
    live.clients.append(c)
    return c


def sign_in(live: LiveServer) -> tuple[httpx.Client, httpx.Response]:
    """The whole browser round trip: portal → provider → callback → portal."""
    c = browser(live)
    return c, c.get("/api/v1/auth/oidc/login")


def outcome(r: httpx.Response) -> str | None:
    assert r.url.path == "/account", r.url
    return parse_qs(urlsplit(str(r.url)).query).get("oidc", [None])[0]


def verified_account(live: LiveServer, redis_url: str, email: str = EMAIL) -> int:
    p = register(live, email=email)
    assert verify(p, "email", codes_sent(redis_url, email)[-1]).status_code == 200
    return p.id


def test_a_verified_email_links_the_identity_and_signs_in(site: LiveServer, provider: Provider,
                                                          redis_url: str) -> None:
    account_id = verified_account(site, redis_url)
    c, r = sign_in(site)
    assert outcome(r) is None and 'id="account-logout"' in r.text
    assert c.get("/api/v1/me").json()["id"] == account_id
    sent = provider.token_requests[-1]
    assert sent["code_verifier"] and "client_secret" not in sent  # PKCE, and the secret only in the header
    # Linked by the provider's subject: a later change of email there still signs in here.
    provider.user = {**provider.user, "email": "new-address@mail.example"}
    c2, r2 = sign_in(site)
    assert outcome(r2) is None and c2.get("/api/v1/me").json()["id"] == account_id
    with site.db() as db:
        assert [tuple(r) for r in db.execute("SELECT account_id FROM account_oidc")] == [(account_id,)]


def test_no_link_without_a_verified_email_on_both_sides(site: LiveServer, provider: Provider,
                                                        redis_url: str) -> None:
    register(site, email=EMAIL)  # the address is registered here but never verified
    c, r = sign_in(site)
    assert outcome(r) == "no_account" and error_of(c.get("/api/v1/me"))[0] == 401
    verified_account(site, redis_url, "other@mail.example")
    provider.user = {"sub": "g-2002", "email": "other@mail.example", "email_verified": False}
    c, r = sign_in(site)
    assert outcome(r) == "email_not_verified" and error_of(c.get("/api/v1/me"))[0] == 401
    with site.db() as db:
        assert db.execute("SELECT count(*) FROM account_oidc").fetchone()[0] == 0


@pytest.mark.parametrize(("knob", "reason"), [
    ({"tamper": {"aud": "someone-else"}}, "bad_id_token"),
    ({"tamper": {"iss": "https://evil.example"}}, "bad_id_token"),
    ({"tamper": {"exp": 1_000_000}}, "bad_id_token"),
    ({"tamper": {"nonce": "replayed-nonce"}}, "bad_nonce"),
    ({"sign_with_other_key": True}, "bad_id_token"),
])
def test_a_forged_or_misaddressed_id_token_signs_no_one_in(site: LiveServer, provider: Provider, redis_url: str,
                                                           knob: dict[str, object], reason: str) -> None:
    verified_account(site, redis_url)
    for name, value in knob.items():
        setattr(provider, name, value)
    c, r = sign_in(site)
    assert outcome(r) == reason and error_of(c.get("/api/v1/me"))[0] == 401


def test_a_planted_or_replayed_callback_signs_no_one_in(site: LiveServer, provider: Provider,
                                                        redis_url: str) -> None:
    verified_account(site, redis_url)
    attacker = httpx.Client(base_url=site.url, follow_redirects=False, timeout=10.0)
    site.clients.append(attacker)
    to_provider = attacker.get("/api/v1/auth/oidc/login")
    back = httpx.get(to_provider.headers["location"], follow_redirects=False).headers["location"]
    victim = browser(site)  # the attacker's callback URL opened in someone else's browser
    assert outcome(victim.get(back)) == "bad_state" and error_of(victim.get("/api/v1/me"))[0] == 401
    first = attacker.get(back)
    assert first.headers["location"] == "/account"  # the real browser completes once
    assert attacker.get(back).headers["location"] == "/account?oidc=bad_state"  # its state cookie is gone
    state = parse_qs(urlsplit(back).query)["state"][0]
    again = httpx.get(back, headers={"Cookie": f"qtraq_oidc={state}"}, follow_redirects=False)
    assert again.headers["location"] == "/account?oidc=expired"  # and the state itself is spent


def test_without_a_provider_the_routes_answer_404_and_the_portal_shows_no_button(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_hashes(monkeypatch)
    with live_server(settings) as live:
        assert error_of(httpx.get(live.api("/auth/oidc/login"))) == (404, "oidc_off")
        assert 'id="oidc-login"' not in httpx.get(f"{live.url}/account").text


def test_the_portal_offers_the_provider_when_configured(site: LiveServer) -> None:
    page = httpx.get(f"{site.url}/account").text
    assert 'id="oidc-login" href="/api/v1/auth/oidc/login"' in page and "Sign in with Google" in page
