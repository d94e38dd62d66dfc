"""Admin endpoints for notices: the dead-letter list, retry, per-clinic channel URLs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.workers import delivery_log, ledger
from qtraq_live.workers.ledger import Notice
from tests.support_http import LiveServer, StartServer, app_server, error_of, start_server  # noqa: F401


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def failed_notice(server: LiveServer, conn: redis.Redis) -> int:
    """One notice that ran out of attempts, copied into the delivery log like the notifier does."""
    notice = Notice(key="a:verify:9:1:sms", kind="verify_code", channel="sms", to="+919811112222", lang="en",
                    context={"code": "1", "minutes": 10}, queue="notify-high", subject="account:9")
    ledger.create(conn, notice, server.settings)
    ledger.transition(conn, notice.key, ("queued",), "failed", reason="attempts_exhausted", rclass="unreachable")
    entries = [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in conn.xrange(keys.NOTICE_LOG)]
    server.run(delivery_log.copy(server.app.state.store, entries))
    return int(server.db().execute("SELECT id FROM notices").fetchone()[0])


def test_admin_lists_failed_notices_and_retries_one(app_server: LiveServer, conn: redis.Redis) -> None:
    nid = failed_notice(app_server, conn)
    admin = app_server.staff("admin")
    r = admin.get("/notifications", params={"status": "failed"})
    assert r.status_code == 200
    (row,) = r.json()["notifications"]
    assert row["id"] == nid and row["reason"] == "attempts_exhausted" and row["response_class"] == "unreachable"
    assert row["recipient"] == "+91***22" and "9811112222" not in r.text
    assert admin.get("/notifications", params={"status": "sent"}).json() == {"notifications": []}

    r = admin.post(f"/notifications/{nid}/retry")
    assert r.status_code == 200 and r.json()["notification"]["status"] == "queued"
    assert ledger.load(conn, "a:verify:9:1:sms")["state"] == "queued"
    (_, fields), = conn.xrange(keys.NOTICE_REQUESTS)
    assert json.loads(fields[b"r"]) == {"op": "retry", "key": "a:verify:9:1:sms"}
    assert error_of(admin.post(f"/notifications/{nid}/retry")) == (409, "not_retryable")


def test_notification_endpoints_check_role_and_input(app_server: LiveServer, conn: redis.Redis) -> None:
    nid = failed_notice(app_server, conn)
    reception, admin = app_server.staff("reception"), app_server.staff("admin")
    assert error_of(reception.get("/notifications"))[0] == 403
    assert error_of(reception.post(f"/notifications/{nid}/retry"))[0] == 403
    assert error_of(app_server.client().get("/notifications"))[0] == 401
    assert error_of(admin.get("/notifications", params={"status": "lost"})) == (422, "invalid_field")
    assert error_of(admin.get("/notifications", params={"limit": "0"})) == (422, "invalid_field")
    assert error_of(admin.get("/notifications", params={"colour": "red"})) == (422, "invalid_field")
    assert error_of(admin.post("/notifications/999/retry")) == (404, "not_found")


def test_clinic_channel_override_is_checked_stored_and_mirrored(app_server: LiveServer, conn: redis.Redis) -> None:
    app_server.clinic("c1")
    admin = app_server.staff("admin")
    bad = admin.put("/clinics/c1/notify-channels", json={"sms": "not a url {to}"})
    assert error_of(bad) == (422, "invalid_field") and "sms" in bad.json()["error"]["message"]
    assert error_of(admin.put("/clinics/c1/notify-channels", json={"fax": "json://x"})) == (422, "unknown_field")
    assert error_of(admin.put("/clinics/nope/notify-channels", json={})) == (404, "not_found")
    url = "json://gateway.local/send?:to={to}"
    r = admin.put("/clinics/c1/notify-channels", json={"sms": url})
    assert r.status_code == 200 and r.json() == {"overrides": {"email": False, "sms": True, "whatsapp": False}}
    assert conn.hgetall(keys.notify_channels("c1")) == {b"sms": url.encode()}
    r = admin.put("/clinics/c1/notify-channels", json={"sms": None})
    assert r.json()["overrides"]["sms"] is False and not conn.exists(keys.notify_channels("c1"))
    assert admin.get("/clinics/c1/notify-channels").json() == {"overrides": {"email": False, "sms": False,
                                                                             "whatsapp": False}}


def test_admin_test_send_reaches_the_notifier_only_for_configured_channels(app_server: LiveServer,
                                                                           conn: redis.Redis) -> None:
    admin = app_server.staff("admin")
    # The test server configures no channel at all: a clear 409, nothing queued.
    assert error_of(admin.post("/notifications/test", json={"channel": "sms", "to": "+919811112222"})) == (
        409, "channel_not_configured")
    assert conn.xlen(keys.NOTICE_REQUESTS) == 0
    assert error_of(admin.post("/notifications/test", json={"channel": "sms", "to": "not-a-phone"})) == (
        422, "invalid_field")
    assert error_of(admin.post("/notifications/test", json={"channel": "fax", "to": "+919811112222"})) == (
        422, "invalid_field")
    assert error_of(admin.post("/notifications/test", json={"channel": "sms", "to": "+91981", "x": 1}))[0] == 422
    assert error_of(app_server.staff("reception").post("/notifications/test", json={"channel": "sms",
                                                                                      "to": "+919811112222"}))[0] == 403


def test_admin_test_send_queues_a_test_notice_for_the_notifier(start_server: StartServer, conn: redis.Redis) -> None:
    server = start_server(notify__sms="json://127.0.0.1:9/send?:to={to}")
    r = server.staff("admin").post("/notifications/test", json={"channel": "sms", "to": "+919811112222"})
    assert r.status_code == 202 and r.json() == {"queued": True}
    (_, fields), = conn.xrange(keys.NOTICE_REQUESTS)
    request = json.loads(fields[b"r"])
    assert (request["kind"], request["channel"], request["to"]) == ("test", "sms", "+919811112222")
