"""Security boundaries the area tests leave open (docs/security.md maps every boundary to its test).

Covered here: HSTS and API headers behind TLS, cookie flags over TLS, CSRF tokens bound to
their session, lockout backoff, rate limits shared through Redis and on code verification,
constant-time comparisons (a source scan), WebSocket Origin on every socket, what a display
key can and cannot do (and that revoking one closes its live screens), and production start
refusing weak seeded passwords.
"""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from websockets.exceptions import ConnectionClosed

from qtraq_live.config import Settings
from qtraq_live.engine import redis_keys as keys
from qtraq_live.record import access
from qtraq_live.web import auth
from support_serve import clean_env
from tests.support_accounts import PASSWORD as ACCOUNT_PASSWORD
from tests.support_accounts import fast_account_hashes, portal, register, with_channels  # noqa: F401
from tests.support_http import (PASSWORD, LiveServer, StartServer, app_server, error_of,  # noqa: F401
                                live_server, start_server, use_fast_hashes)
from tests.support_hub import close_code, open_ws, recv, ws_url

PACKAGE = Path(__file__).resolve().parent.parent / "qtraq_live"
TLS = {"X-Forwarded-Proto": "https"}  # believed from a trusted proxy (see the `tls` fixture)
MAX_TRIES = 60  # above any sane per-address limit on registration


def _display_key(live: LiveServer, clinic: str = "c1") -> tuple[int, str]:
    key = live.run(access.create_display_key(live.app.state.store, live.app.state.redis, clinic))
    with live.db() as db:
        row = db.execute("SELECT id FROM display_keys WHERE key_hash = ?", (keys.secret_hash(key),)).fetchone()
    return int(row["id"]), key


# -- headers and cookies -------------------------------------------------------------------


@pytest.fixture
def tls(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """A server behind a local TLS proxy: 127.0.0.1 is trusted to say ``X-Forwarded-Proto``."""
    use_fast_hashes(monkeypatch)
    fast_account_hashes(monkeypatch)
    with live_server(with_channels(settings.replace(security__trusted_proxies=["127.0.0.1"]))) as live:
        yield live


def test_api_answers_forbid_framing_and_scripts_and_hsts_comes_only_over_tls(tls: LiveServer) -> None:
    plain = tls.client().get("/clinics/c1")
    assert plain.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "strict-transport-security" not in plain.headers  # HSTS over plain HTTP would be ignored or wrong
    over_tls = tls.client().get("/clinics/c1", headers=TLS)
    assert over_tls.headers["strict-transport-security"].startswith("max-age=31536000")
    page = tls.client().get(tls.url + "/reception", headers=TLS)
    assert "script-src 'self'" in page.headers["content-security-policy"]  # the page's own CSP wins
    assert page.headers["strict-transport-security"].startswith("max-age=")


def test_session_cookies_are_secure_httponly_and_lax_over_tls(tls: LiveServer) -> None:
    name = tls.add_user("reception")
    staff = tls.client(headers=TLS).post("/auth/login", json={"username": name, "password": PASSWORD})
    patient = register(tls)
    account = tls.client(headers=TLS).post("/auth/account-login", json={"email": patient.email,
                                                                       "password": ACCOUNT_PASSWORD})
    for r in (staff, account):
        assert r.status_code == 200, r.text
        flags = {f.strip().lower() for f in r.headers["set-cookie"].split(";")}
        assert {"httponly", "secure", "samesite=lax", "path=/"} <= flags


@pytest.mark.parametrize(("trusted", "logged"), [(["127.0.0.1"], "203.0.113.9"), ([], "127.0.0.1")])
def test_logged_addresses_are_the_real_clients_behind_a_trusted_proxy(start_server: StartServer,
                                                                       sync_redis: redis.Redis,
                                                                       trusted: list[str], logged: str) -> None:
    live = start_server(security__trusted_proxies=trusted)
    name = live.add_user("reception")
    c = live.client(headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})  # a forged hop, then the proxy's
    assert c.post("/auth/login", json={"username": name, "password": PASSWORD}).status_code == 200
    session = sync_redis.hgetall(keys.session(c.cookies["qtraq_session"]))
    assert session["ip"] == logged


# -- CSRF ----------------------------------------------------------------------------------


def test_a_csrf_token_works_only_with_its_own_session(app_server: LiveServer) -> None:
    first, second = app_server.staff("admin"), app_server.staff("admin")
    swapped = first.post("/clinics", json={"id": "c1", "name": "One"},
                         headers={"X-CSRF-Token": second.headers["X-CSRF-Token"]})
    assert error_of(swapped) == (403, "csrf_failed")
    opaque = first.post("/clinics", json={"id": "c1", "name": "One"}, headers={"Origin": "null"})
    assert error_of(opaque) == (403, "origin_not_allowed")  # sandboxed frames and file:// pages
    assert error_of(first.get("/clinics/c1")) == (404, "not_found")  # nothing was created
    assert first.post("/clinics", json={"id": "c1", "name": "One"}).status_code == 201


# -- login lockout and rate limits ---------------------------------------------------------


def test_lockout_doubles_with_each_failure_after_it_expires(app_server: LiveServer,
                                                            sync_redis: redis.Redis) -> None:
    name = app_server.add_user("admin")
    c = app_server.client()
    for i in range(auth.FREE_FAILS["ipuser"]):
        assert c.post("/auth/login", json={"username": name, "password": f"guess-{i}"}).status_code == 401
    lock = keys.rate_limit("login-lock-ipuser", keys.secret_hash(f"127.0.0.1 {name}")[:32])
    assert 0 < sync_redis.ttl(lock) <= auth.FIRST_LOCK_S
    for expected in (2 * auth.FIRST_LOCK_S, 4 * auth.FIRST_LOCK_S):
        sync_redis.delete(lock)  # the lock ran out, but the failures are still remembered
        r = c.post("/auth/login", json={"username": name, "password": "one more guess"})
        assert error_of(r) == (401, "invalid_credentials")
        assert expected - 5 <= sync_redis.ttl(lock) <= expected
        assert error_of(c.post("/auth/login", json={"username": name, "password": PASSWORD}))[0] == 429


def test_rate_limits_are_shared_by_every_process_through_redis(start_server: StartServer) -> None:
    one = start_server(security__track_rate_limit=3)
    two = start_server(security__track_rate_limit=3)
    token_path = "/t/" + "x" * 32
    assert [one.client().get(token_path).status_code for _ in range(2)] == [404, 404]
    assert two.client().get(token_path).status_code == 404
    limited = two.client().get(token_path)
    assert error_of(limited) == (429, "rate_limited") and int(limited.headers["retry-after"]) >= 1
    assert one.client().get(token_path).status_code == 429


def test_registration_and_code_guessing_are_rate_limited(portal: LiveServer) -> None:  # noqa: F811
    anon = portal.client()
    attempts = [anon.post("/accounts", json={"name": "x"}) for _ in range(MAX_TRIES)]  # valid or not, all count
    codes = [r.status_code for r in attempts]
    assert set(codes[:codes.index(429)]) == {422} and set(codes[codes.index(429):]) == {429}
    assert int(attempts[-1].headers["retry-after"]) >= 1

    portal.run(portal.app.state.redis.flushdb())  # a fresh address window for the patient below
    patient = register(portal)
    answers = [patient.post("/accounts/verify", json={"channel": "email", "code": f"{i:06d}"}).status_code
               for i in range(12)]
    assert 429 in answers, answers
    assert answers.index(429) <= 10  # a per-account limit on guesses, in Redis, whatever the code store says


# -- constant-time comparisons -------------------------------------------------------------

SECRET_WORDS = ("token", "csrf", "secret", "digest", "signature", "password", "code_hash", "key_hash")
# The CLI comparing the two typed entries of a new password: local, no attacker timing it.
NOT_A_CHECK = ("qtraq_live/cli.py: getpass.getpass('Repeat password: ') != password",)


def _secret_comparisons(path: Path) -> list[str]:
    """``==``/``!=`` between expressions that name a secret (``hmac.compare_digest`` is the rule)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            continue
        sides = [node.left, *node.comparators]
        if any(isinstance(s, ast.Constant) for s in sides):  # against a literal: not a secret check
            continue
        text = [ast.unparse(s).lower() for s in sides]
        if sum(any(w in t for w in SECRET_WORDS) for t in text) >= 1:
            found.append(f"{path.relative_to(PACKAGE.parent)}: {ast.unparse(node)}")
    return found


def test_secrets_are_never_compared_with_equals() -> None:
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _secret_comparisons(path)
                 if hit not in NOT_A_CHECK]
    assert offenders == []
    uses = sum("compare_digest" in p.read_text() for p in PACKAGE.rglob("*.py"))
    assert uses >= 4  # CSRF, display keys, check-in codes, verification codes, webhooks


# -- WebSockets ----------------------------------------------------------------------------


async def test_every_socket_checks_the_origin(start_server: StartServer) -> None:
    live = start_server(security__allowed_origins=["https://tv.clinic.example"])
    live.clinic("c1", ("gp",))
    _, key = _display_key(live)
    desk = live.staff("reception")
    token = desk.post("/queues/gp/tickets", json={}).json()["ticket"]["token"]
    cookie = {"Cookie": f"qtraq_session={desk.cookies['qtraq_session']}"}
    sockets = {"display": (f"/ws/display/c1?key={key}", {}), "patient": (f"/ws/t/{token}", {}),
               "reception": ("/ws/reception/c1", cookie)}
    for path, headers in sockets.values():
        url = ws_url(live.url, path)
        assert await close_code(url, origin="https://evil.example", additional_headers=headers) == 4403
        assert await close_code(url, origin="null", additional_headers=headers) == 4403
        async with await open_ws(url, origin="https://tv.clinic.example", additional_headers=headers) as ws:
            assert (await recv(ws))["type"] == "snapshot"


# -- display keys --------------------------------------------------------------------------


async def test_a_display_key_watches_one_clinic_and_calls_no_one(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    _, key = _display_key(app_server)
    as_bearer = app_server.client(headers={"Authorization": f"Bearer {key}"})
    for method, path in (("POST", "/queues/gp/next"), ("POST", "/queues/gp/tickets"), ("GET", "/queues/gp"),
                         ("POST", "/queues/gp/pause"), ("GET", "/clinics/c1")):
        assert error_of(as_bearer.request(method, path, json={})) == (401, "invalid_token")
    anon = app_server.client()
    assert error_of(anon.post(f"/queues/gp/next?key={key}", json={}))[0] == 401
    assert await close_code(ws_url(app_server.url, f"/ws/reception/c1?key={key}")) == 4401
    assert app_server.run(app_server.engine.version("c1")) == 2  # clinic and queue only: no call was made


async def test_revoking_a_display_key_closes_its_screens_and_refuses_it(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    key_id, key = _display_key(app_server)
    _, other_key = _display_key(app_server)
    admin = app_server.staff("admin")
    url = ws_url(app_server.url, f"/ws/display/c1?key={key}")
    async with await open_ws(url) as revoked, \
            await open_ws(ws_url(app_server.url, f"/ws/display/c1?key={other_key}")) as kept:
        assert (await recv(revoked))["type"] == "snapshot" and (await recv(kept))["type"] == "snapshot"
        assert admin.delete(f"/admin/clinics/c1/display-keys/{key_id}").status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv(revoked)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        admin.post("/queues/gp/tickets", json={})
        assert (await recv(kept))["type"] in ("update", "snapshot")  # the other screen is unaffected
    assert await close_code(url) == 4401
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    assert not app_server.run(app_server.app.state.redis.exists(f"qt:dk:{key_hash}"))


# -- production start ----------------------------------------------------------------------


@pytest.mark.parametrize("password", ["admin123", "changeme", "short1"])
def test_production_refuses_to_seed_a_default_or_weak_password(tmp_path: Path, password: str) -> None:
    config = tmp_path / "qtraq.toml"
    config.write_text('[[staff]]\nusername = "admin"\nrole = "admin"\npassword_env = "QTRAQ_ADMIN_PASSWORD"\n')
    env = {**clean_env(tmp_path / "data"), "QTRAQ_ENV": "production", "QTRAQ_SECRET_KEY": "k" * 40,
           "QTRAQ_PUBLIC_URL": "https://q.example.org", "QTRAQ_GRIEVANCE_CONTACT": "Grievance Officer",
           "QTRAQ_CONFIG": str(config), "QTRAQ_ADMIN_PASSWORD": password}
    result = subprocess.run(["qtraq-live", "serve", "--port", "0"], capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "staff[0]" in result.stderr and "Traceback" not in result.stderr
    assert password not in result.stderr  # the refusal names the entry, never the password


def test_weak_password_check_accepts_a_real_one() -> None:
    from qtraq_live.runtime.seed import check_seed_password

    check_seed_password("staff[0]", "admin", "a long unusual passphrase")
    for weak in ("admin123", "short", "adminadmin1"):
        with pytest.raises(Exception, match="staff"):
            check_seed_password("staff[0]", "admin", weak)



def test_the_threat_model_names_only_tests_that_exist() -> None:
    """docs/security.md maps each boundary to a test; a renamed or deleted test must not leave
    a boundary pointing at nothing."""
    doc = (PACKAGE.parent / "docs" / "security.md").read_text()
    refs = set(re.findall(r"`(test_\w+)::(test_\w+|\*)`", doc))
    assert len(refs) > 50
    tests = PACKAGE.parent / "tests"
    missing = [f"{module}::{name}" for module, name in sorted(refs)
               if not (tests / f"{module}.py").exists()
               or (name != "*" and not re.search(rf"def {name}\b", (tests / f"{module}.py").read_text()))]
    assert missing == []
