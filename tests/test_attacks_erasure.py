"""Erasure and export reach tickets issued to the account's contacts (issue #21 item 5), on a
real ``qtraq-live serve`` with its embedded Redis, persister, notifier and workers: after
``DELETE /me`` no byte of the walk-in names, the phone or the email is left anywhere under the
data dir (SQLite file and WAL, AOF, RDB). The export lists the same tickets first.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import redis

from support_serve import ServeProcess, clean_env, serve_process  # noqa: F401
from tests.support_notify import wait_until

ADMIN_PASSWORD = "erasure acceptance admin"
ACCOUNT_PASSWORD = "a long unusual passphrase"
MOBILE, EMAIL = "+919812300077", "quorvath.ilbrand@mail.example"
DESK_NAME, SELF_NAME = "Quorvath Ilbrand", "Ysmerelda Xanthoria"
CHANNELS = {"QTRAQ_NOTIFY_SMS": "json://127.0.0.1:9/send?:to={to}", "QTRAQ_NOTIFY_EMAIL": "mailto://127.0.0.1:9?from=clinic%40example.com&to={to}"}


def _needles() -> list[bytes]:
    words = [MOBILE, MOBILE.lstrip("+"), EMAIL, *DESK_NAME.split(), *SELF_NAME.split()]
    return sorted({w.encode() for w in words} | {w.encode("utf-16-le") for w in words})


def _found(data_dir: Path) -> list[str]:
    hits = []
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.is_socket():
            blob = path.read_bytes()
            hits += [f"{path.relative_to(data_dir)}: {n!r}" for n in _needles() if n in blob]
    return hits


def _codes(r: redis.Redis, to: str) -> list[str]:
    entries: Any = r.xrange("qt:notice:requests")
    return [json.loads(f["r"])["context"]["code"] for _, f in entries
            if json.loads(f["r"]).get("kind") == "verify_code" and json.loads(f["r"])["to"] == to]


def _names_persisted(db_file: Path) -> bool:
    with sqlite3.connect(db_file) as db:
        return db.execute("SELECT count(*) FROM tickets WHERE name IN (?, ?)", (DESK_NAME, SELF_NAME)).fetchone()[0] == 2


def test_erasure_reaches_walk_in_tickets_of_the_account_s_contacts_in_every_file(tmp_path: Path,
                                                                                 serve_process: Any) -> None:
    data = tmp_path / "data"
    added = subprocess.run(["qtraq-live", "user", "add", "boss", "--role", "admin", "--password-stdin"],
                           input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, env=clean_env(data), timeout=60)
    assert added.returncode == 0, added.stderr
    srv: ServeProcess = serve_process(data, env=CHANNELS)
    api = f"{srv.url}/api/v1"
    admin = httpx.Client(base_url=api, timeout=10)
    admin.headers["X-CSRF-Token"] = admin.post("/auth/login", json={"username": "boss", "password": ADMIN_PASSWORD}
                                               ).json()["csrf_token"]
    assert admin.post("/clinics", json={"id": "er", "name": "Erasure Clinic", "timezone": "UTC"}).status_code == 201
    assert admin.post("/clinics/er/queues", json={"id": "erq", "name": "GP", "prefix": "E",
                                                  "self_checkin": True}).status_code == 201
    live = redis.Redis(unix_socket_path=str(data / "redis" / "redis.sock"), decode_responses=True)

    patient = httpx.Client(base_url=api, timeout=30)
    r = patient.post("/accounts", json={"name": "Account Holder", "email": EMAIL, "mobile": MOBILE,
                                        "password": ACCOUNT_PASSWORD})
    assert r.status_code == 201, r.text
    patient.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    for channel, to in (("mobile", MOBILE), ("email", EMAIL)):
        code = wait_until(lambda to=to: _codes(live, to), f"the {channel} code")[-1]
        assert patient.post("/accounts/verify", json={"channel": channel, "code": code}).status_code == 200

    desk = admin.post("/queues/erq/tickets", json={"name": DESK_NAME, "mobile": MOBILE, "notify": True})
    walk_in = httpx.post(f"{api}/public/queues/erq/join", json={"name": SELF_NAME, "email": EMAIL, "notify": True})
    assert desk.status_code == 201 and walk_in.status_code == 201, (desk.text, walk_in.text)
    wait_until(lambda: _names_persisted(data / "qtraq.db"), "the persister to record both tickets")
    exported = patient.get("/me/export").json()["walk_in_tickets"]
    assert {(t["name"], t["mobile"], t["email"]) for t in exported} == {(DESK_NAME, MOBILE, None),
                                                                        (SELF_NAME, None, EMAIL)}
    assert _found(data)  # the search below can see them

    assert patient.delete("/me").status_code == 204
    wait_until(lambda: not live.info("persistence")["aof_rewrite_in_progress"]
               and not live.info("persistence")["aof_rewrite_scheduled"], "the AOF rewrite")
    assert live.hget(f"qt:t:{desk.json()['ticket']['id']}", "status") == "cancelled"
    wait_until(lambda: not _found(data), "every copy to be gone")  # the AOF rewrite lands in its own time
    assert _found(data) == []
    live.close()
