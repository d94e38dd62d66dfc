"""Withdrawing staff access (issue #21 item 8), against running servers: disable a user, reset a
password, change a role, end sessions, scoped and expiring API tokens, revoke them — by the API
and by the CLI, each refused in every process at once (the credential cache drops them).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx

from qtraq_live.record import access
from support_serve import clean_env
from tests.support_http import PASSWORD, LiveServer, StartServer, error_of, start_server  # noqa: F401
from tests.support_notify import wait_until

NEW_PASSWORD = "saffron lantern orbit"


def _refused_everywhere(*calls: Callable[[], httpx.Response]) -> None:
    """Each call is refused (401) — polled only while the announcement crosses to the other
    process, which is immediate on one box."""
    wait_until(lambda: all(call().status_code == 401 for call in calls), "the withdrawn access to be refused")


def _two(start_server: StartServer) -> tuple[LiveServer, LiveServer]:
    """Two server processes on one data dir and Redis (``serve --workers 2``); credentials cached."""
    one = start_server(security__credential_cache_s=60)
    two = start_server(security__credential_cache_s=60)
    return one, two


def _same_session(live: LiveServer, c: httpx.Client) -> httpx.Client:
    """The same cookie and CSRF token, sent to another server process."""
    return live.client(cookies=c.cookies, headers={"X-CSRF-Token": c.headers["X-CSRF-Token"]})


def test_disabling_a_user_ends_sessions_and_tokens_in_every_process(start_server: StartServer) -> None:
    one, two = _two(start_server)
    admin = one.staff("admin")
    name = one.add_user("reception")
    desk = one.login(name)
    token = one.run(access.create_api_token(one.app.state.store, one.app.state.redis, name))
    elsewhere = _same_session(two, desk)
    bearer = two.client(headers={"Authorization": f"Bearer {token}"})
    assert elsewhere.get("/auth/me").status_code == 200 and bearer.get("/auth/me").status_code == 200  # cached
    uid = desk.get("/auth/me").json()["user"]["id"]
    r = admin.patch(f"/admin/users/{uid}", json={"disabled": True})
    assert r.status_code == 200 and r.json()["user"]["disabled"] is True
    _refused_everywhere(lambda: elsewhere.get("/auth/me"), lambda: bearer.get("/auth/me"),
                        lambda: desk.get("/auth/me"))
    assert error_of(one.client().post("/auth/login", json={"username": name, "password": PASSWORD}))[0] == 401
    assert admin.patch(f"/admin/users/{uid}", json={"disabled": False}).status_code == 200
    assert one.client().post("/auth/login", json={"username": name, "password": PASSWORD}).status_code == 200
    me = admin.get("/auth/me").json()["user"]["id"]
    assert error_of(admin.patch(f"/admin/users/{me}", json={"disabled": True})) == (409, "own_account")


def test_a_password_reset_logs_the_old_holder_out_and_refuses_weak_ones(start_server: StartServer) -> None:
    one, two = _two(start_server)
    admin = one.staff("admin")
    name = one.add_user("reception")
    desk = one.login(name)
    uid = desk.get("/auth/me").json()["user"]["id"]
    assert error_of(admin.patch(f"/admin/users/{uid}", json={"password": "password1"})) == (422, "weak_password")
    assert desk.get("/auth/me").status_code == 200  # a refused change changes nothing
    assert admin.patch(f"/admin/users/{uid}", json={"password": NEW_PASSWORD}).status_code == 200
    _refused_everywhere(lambda: desk.get("/auth/me"), lambda: _same_session(two, desk).get("/auth/me"))
    assert error_of(two.client().post("/auth/login", json={"username": name, "password": PASSWORD}))[0] == 401
    assert two.client().post("/auth/login", json={"username": name, "password": NEW_PASSWORD}).status_code == 200


def test_role_changes_and_ended_sessions_hold_at_once(start_server: StartServer) -> None:
    one, two = _two(start_server)
    one.clinic("c1", ("gp", "eye"))
    admin = one.staff("admin")
    name = one.add_user("reception")
    desk = one.login(name)
    uid = desk.get("/auth/me").json()["user"]["id"]
    elsewhere = _same_session(two, desk)
    assert elsewhere.post("/queues/gp/tickets", json={}).status_code == 201
    r = admin.patch(f"/admin/users/{uid}", json={"role": "doctor", "queues": ["eye"]})
    assert r.json()["user"] == {**r.json()["user"], "role": "doctor", "queues": ["eye"]}
    wait_until(lambda: elsewhere.post("/queues/gp/tickets", json={}).status_code == 403, "the narrower role")
    assert error_of(admin.patch(f"/admin/users/{uid}", json={"role": "doctor", "queues": []}))[0] == 422
    assert admin.delete(f"/admin/users/{uid}/sessions").json()["ended"] == 1
    _refused_everywhere(lambda: elsewhere.get("/auth/me"))


def test_api_tokens_have_a_scope_an_expiry_and_are_revoked_everywhere(start_server: StartServer) -> None:
    one, two = _two(start_server)
    one.clinic("c1", ("gp",))
    admin = one.staff("admin")
    name = one.add_user("reception")
    uid = one.login(name).get("/auth/me").json()["user"]["id"]
    created = admin.post(f"/admin/users/{uid}/tokens", json={"scope": "press", "expires_days": 30})
    assert created.status_code == 201 and created.json()["scope"] == "press" and created.json()["active"]
    button = two.client(headers={"Authorization": f"Bearer {created.json()['token']}"})
    assert button.post("/queues/gp/next", json={}).status_code == 200  # what a desk button does
    assert error_of(button.post("/queues/gp/tickets", json={})) == (403, "forbidden")
    assert error_of(button.get("/clinics/c1")) == (403, "token_scope")
    listed = admin.get("/admin/tokens", params={"user": name}).json()["tokens"]
    assert [t["id"] for t in listed] == [created.json()["id"]] and "token" not in listed[0]
    assert admin.delete(f"/admin/tokens/{created.json()['id']}").status_code == 200
    _refused_everywhere(lambda: button.post("/queues/gp/next", json={}))
    soon = int(time.time()) + 2  # an expiry: refused once it passes, by the cache too
    short = one.run(access.create_api_token(one.app.state.store, one.app.state.redis, name, "", soon))
    expiring = two.client(headers={"Authorization": f"Bearer {short}"})
    assert expiring.get("/auth/me").status_code == 200
    _refused_everywhere(lambda: expiring.get("/auth/me"))
    assert time.time() >= soon


def _cli(live: LiveServer, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = clean_env(live.settings.data_dir, QTRAQ_REDIS_URL=live.settings.redis_url)
    return subprocess.run(["qtraq-live", *args], input=stdin, capture_output=True, text=True, timeout=60, env=env)


def test_the_cli_withdraws_access_from_a_running_server(start_server: StartServer) -> None:
    live = start_server(security__credential_cache_s=60)
    live.clinic("c1", ("gp",))
    name = live.add_user("reception")
    desk = live.login(name)
    assert desk.get("/auth/me").status_code == 200
    assert _cli(live, "--version").stdout.startswith("qtraq-live ")
    assert _cli(live, "user", "disable", name).returncode == 0
    _refused_everywhere(lambda: desk.get("/auth/me"))
    assert _cli(live, "user", "enable", name).returncode == 0
    weak = _cli(live, "user", "passwd", name, "--password-stdin", stdin="12345678\n")
    assert weak.returncode == 2 and "password" in weak.stderr
    assert _cli(live, "user", "passwd", name, "--password-stdin", stdin=NEW_PASSWORD + "\n").returncode == 0
    desk = live.login(name, NEW_PASSWORD)
    role = _cli(live, "user", "role", name, "--role", "doctor", "--queue", "gp")
    assert role.returncode == 0 and "doctor" in role.stdout
    wait_until(lambda: desk.post("/queues/gp/tickets", json={}).status_code == 403, "the doctor role")
    made = _cli(live, "token", "create", name, "--scope", "press", "--expires-days", "7")
    token = made.stdout.strip().splitlines()[-1]
    bearer = live.client(headers={"Authorization": f"Bearer {token}"})
    assert bearer.post("/queues/gp/next", json={}).status_code == 200
    listing = _cli(live, "token", "list", name).stdout
    assert "press" in listing and "active" in listing and token not in listing
    token_id = listing.strip().splitlines()[-1].split()[0]
    assert _cli(live, "token", "revoke", token_id).returncode == 0
    _refused_everywhere(lambda: bearer.post("/queues/gp/next", json={}))
    assert "revoked" in _cli(live, "token", "list").stdout
    assert _cli(live, "token", "revoke", "no-such-token-at-all-xxxxxxxx").returncode == 1
