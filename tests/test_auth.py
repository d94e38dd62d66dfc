"""Staff login, sessions in Redis, CSRF, bearer tokens, lockout and roles, over real HTTP."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest
import redis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.web import auth
from tests.support_http import PASSWORD, LiveServer, StartServer, app_server, start_server  # noqa: F401


def _audit(server: LiveServer) -> list[tuple[str, str, str]]:
    with server.db() as db:
        return [(r["actor"], r["action"], r["target"]) for r in db.execute("SELECT * FROM audit_log ORDER BY id")]


def test_login_sets_a_session_cookie_and_returns_the_csrf_token(app_server: LiveServer,
                                                                sync_redis: redis.Redis) -> None:
    name = app_server.add_user("reception")
    c = app_server.client(headers={"User-Agent": "pytest-browser/1.0"})
    r = c.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert len(body["csrf_token"]) >= 22
    assert body["user"]["role"] == "reception" and body["user"]["username"] == name
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("qtraq_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    sid = c.cookies["qtraq_session"]
    key = "qt:sess:" + hashlib.sha256(sid.encode()).hexdigest()
    session = sync_redis.hgetall(key)
    assert session["kind"] == "staff"
    assert session["uid"] == str(body["user"]["id"])
    assert session["csrf"] == body["csrf_token"]
    assert session["ip"] == "127.0.0.1" and session["ua"] == "pytest-browser/1.0" and int(session["created"]) > 0
    assert 12 * 3600 - 60 < sync_redis.ttl(key) <= 12 * 3600
    assert not sync_redis.exists(f"qt:sess:{sid}")  # only the hash of the id is a key
    me = c.get("/auth/me")
    assert me.status_code == 200
    assert me.json() == {"user": body["user"], "csrf_token": body["csrf_token"]}
    assert ("user:%d" % body["user"]["id"], "auth.login", "user:%d" % body["user"]["id"]) in _audit(app_server)


def test_wrong_and_unknown_logins_answer_alike(app_server: LiveServer) -> None:
    name = app_server.add_user("doctor", ("gp",))
    c = app_server.client()
    wrong = c.post("/auth/login", json={"username": name, "password": "not-the-password"})
    unknown = c.post("/auth/login", json={"username": "nobody", "password": "not-the-password"})
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.json() == {"error": {"code": "invalid_credentials", "message": "wrong username or password"}}
        assert "set-cookie" not in r.headers
    assert _audit(app_server).count(("anonymous", "auth.login_failed", "")) == 2
    assert c.get("/auth/me").json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"username": "a"}, 422, "missing_field"),
    ({"username": "a", "password": "b", "remember": True}, 422, "unknown_field"),
    ({"username": 1, "password": "b"}, 422, "invalid_field"),
])
def test_login_body_is_validated(app_server: LiveServer, body: dict[str, object], status: int, code: str) -> None:
    r = app_server.client().post("/auth/login", json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)


def test_repeated_failures_lock_the_username_with_retry_after(app_server: LiveServer) -> None:
    name = app_server.add_user("admin")
    c = app_server.client()
    codes = [c.post("/auth/login", json={"username": name, "password": "guess-%d" % i}).status_code
             for i in range(auth.FREE_FAILS["ipuser"])]
    assert codes == [401] * auth.FREE_FAILS["ipuser"]
    locked = c.post("/auth/login", json={"username": name, "password": PASSWORD})  # even the right one
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "rate_limited"
    assert auth.FIRST_LOCK_S - 5 <= int(locked.headers["retry-after"]) <= auth.FIRST_LOCK_S
    other = app_server.add_user("admin")  # another username from the same address still works
    assert c.post("/auth/login", json={"username": other, "password": PASSWORD}).status_code == 200


def test_many_failures_from_one_address_lock_the_address(app_server: LiveServer) -> None:
    c = app_server.client()
    for i in range(auth.FREE_FAILS["ip"]):
        assert c.post("/auth/login", json={"username": f"user{i}", "password": "x"}).status_code == 401
    name = app_server.add_user("admin")
    r = c.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 429 and "retry-after" in r.headers


def test_cookie_writes_need_the_csrf_token(app_server: LiveServer) -> None:
    admin = app_server.staff("admin")
    good = admin.headers.pop("X-CSRF-Token")
    missing = admin.post("/clinics", json={"id": "c1", "name": "One"})
    wrong = admin.post("/clinics", json={"id": "c1", "name": "One"}, headers={"X-CSRF-Token": good[:-1] + "x"})
    for r in (missing, wrong):
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "csrf_failed"
    assert admin.get("/clinics/c1").status_code == 404  # nothing was created; reads need no token
    foreign = admin.post("/clinics", json={"id": "c1", "name": "One"},
                         headers={"X-CSRF-Token": good, "Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    same = admin.post("/clinics", json={"id": "c1", "name": "One"},
                      headers={"X-CSRF-Token": good, "Origin": app_server.url})
    assert same.status_code == 201


def test_bearer_tokens_need_no_csrf_and_bad_ones_are_refused(app_server: LiveServer) -> None:
    admin = app_server.bearer("admin")
    assert admin.post("/clinics", json={"id": "c1", "name": "One"}).status_code == 201
    assert admin.get("/auth/me").json()["user"]["role"] == "admin"
    assert "csrf_token" not in admin.get("/auth/me").json()
    for header in ("Bearer not-a-real-token-at-all-xxxxxxxx", "Basic dXNlcjpwYXNz", "Bearer"):
        r = app_server.client(headers={"Authorization": header}).get("/clinics/c1")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_token"


def test_credentials_are_checked_after_redis_forgets_the_scripts(app_server: LiveServer,
                                                                 sync_redis: redis.Redis) -> None:
    """The one-round-trip lookup (lua/staff.lua) runs by hash; a restarted or flushed Redis
    has no scripts, and the first check after it loads the script again."""
    admin, desk = app_server.bearer("admin"), app_server.staff("reception")
    sync_redis.script_flush()
    assert admin.get("/auth/me").json()["user"]["role"] == "admin"
    assert desk.get("/auth/me").json()["user"]["role"] == "reception"
    assert sync_redis.script_exists(auth.STAFF_SCRIPT_SHA) == [True]


def test_logout_ends_the_session(app_server: LiveServer, sync_redis: redis.Redis) -> None:
    c = app_server.staff("reception")
    sid = c.cookies["qtraq_session"]
    no_token = c.post("/auth/logout", headers={"X-CSRF-Token": ""})
    assert no_token.status_code == 403
    r = c.post("/auth/logout")
    assert r.status_code == 204
    assert 'qtraq_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert not sync_redis.exists("qt:sess:" + hashlib.sha256(sid.encode()).hexdigest())
    replay = app_server.client(cookies={"qtraq_session": sid})
    assert replay.get("/auth/me").status_code == 401


def test_session_from_cookie_serves_the_hub(app_server: LiveServer) -> None:
    c = app_server.staff("doctor", ("gp", "eye"))
    redis_client = app_server.app.state.redis
    user = app_server.run(auth.session_from_cookie(redis_client, c.cookies["qtraq_session"]))
    assert user is not None
    assert user["role"] == "doctor" and user["queues"] == ["eye", "gp"]
    assert set(user) == {"id", "username", "role", "queues"}
    for bad in ("", "forged-session-id", None):
        assert app_server.run(auth.session_from_cookie(redis_client, bad)) is None


def test_a_disabled_user_is_logged_out_everywhere(app_server: LiveServer, sync_redis: redis.Redis) -> None:
    """Disabling writes the mirror and announces it (as every narrowing of a credential must):
    processes that had the user's credential cached drop it as soon as they hear."""
    c, bearer = app_server.staff("reception"), app_server.bearer("reception")
    uid = c.get("/auth/me").json()["user"]["id"]
    bearer_uid = bearer.get("/auth/me").json()["user"]["id"]
    for user_id in (uid, bearer_uid):
        sync_redis.hset(f"qt:user:{user_id}", "disabled", "1")
    sync_redis.publish(keys.CREDENTIALS_CHANGED, "user")
    deadline = time.monotonic() + 2
    while {c.get("/auth/me").status_code, bearer.get("/auth/me").status_code} != {401}:
        assert time.monotonic() < deadline, "a disabled user was still let in after the announcement"
        time.sleep(0.01)


def test_roles_nest(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    reception, doctor = app_server.staff("reception"), app_server.staff("doctor", ("gp",))
    for c in (reception, doctor):
        r = c.post("/clinics", json={"id": "c2", "name": "Two"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert c.post("/clinics/c1/queues", json={"id": "x", "name": "X", "prefix": "X"}).status_code == 403
        assert c.get("/clinics/c1").status_code == 200
    assert doctor.post("/queues/gp/tickets", json={}).status_code == 403
    assert doctor.post("/queues/gp/pause").status_code == 403
    assert reception.post("/queues/gp/tickets", json={}).status_code == 201
    assert app_server.client().get("/clinics/c1").status_code == 401


def test_production_cookies_are_secure(start_server: StartServer) -> None:
    live = start_server(env="production")
    name = live.add_user("admin")
    r = httpx.post(live.api("/auth/login"), json={"username": name, "password": PASSWORD})
    assert r.status_code == 200
    assert "Secure" in r.headers["set-cookie"]


def test_an_account_session_is_not_a_staff_session(app_server: LiveServer, sync_redis: redis.Redis) -> None:
    staff = app_server.staff("admin")
    uid = staff.get("/auth/me").json()["user"]["id"]
    sid = "patient-session-id-0123456789abcdef"
    sync_redis.hset("qt:sess:" + hashlib.sha256(sid.encode()).hexdigest(),
                    mapping={"kind": "account", "uid": str(uid), "csrf": "c" * 43})
    patient = app_server.client(cookies={"qtraq_session": sid}, headers={"X-CSRF-Token": "c" * 43})
    assert patient.get("/auth/me").status_code == 401
    assert patient.post("/clinics", json={"id": "c1", "name": "One"}).status_code == 401
    assert app_server.run(auth.session_from_cookie(app_server.app.state.redis, sid)) is None
