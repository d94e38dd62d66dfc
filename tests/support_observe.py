"""A real ``qtraq-live serve`` driven through a clinic morning, for the logs and metrics tests.

:func:`observed_server` starts the server (embedded Redis, duties, RQ workers, the access log
on, SMS to the local :class:`~tests.support_notify.Sink`, email to a closed port so it fails
and is retried) and :func:`run_flow` does what a clinic does: staff login, a display key and
a display socket, walk-ins with names, phones and emails, patients reading their tickets, a
"next" press, an account registering and logging in. The flow returns every secret and
personal detail it used, so a test can look for each one in the logs.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import ClientConnection, connect

from tests.support_notify import Sink, free_port
from tests.support_serve import ADMIN_PASSWORD_ENV, ServeProcess, one_clinic_config, wait_until

ADMIN_PASSWORD = "observability-admin-passphrase"
CONFIG = one_clinic_config("Observed Clinic")
WALK_INS = [
    {"name": "Zenobia Quartermaine", "mobile": "+919812340001", "email": "zenobia.q@example.org"},
    {"name": "Bartholomew Oyelaran", "mobile": "+447911123456", "email": "b.oyelaran@example.net"},
]
ACCOUNT = {"name": "Philippa Wendelbrook", "email": "philippa.w@example.com", "mobile": "+919811122233",
           "password": "an account passphrase for tests"}


@contextlib.contextmanager
def observed_server(tmp_path: Path, sink: Sink, args: Sequence[str] = ()) -> Iterator[ServeProcess]:
    (tmp_path / "qtraq.toml").write_text(CONFIG)
    env = {
        "QTRAQ_CONFIG": str(tmp_path / "qtraq.toml"),
        ADMIN_PASSWORD_ENV: ADMIN_PASSWORD,
        "QTRAQ_NOTIFY_SMS": sink.url(),
        "QTRAQ_NOTIFY_EMAIL": f"mailto://127.0.0.1:{free_port()}?from=clinic%40example.com&to={{to}}",
        "QTRAQ_NOTIFY_RETRY_BASE_MS": "200",
        "QTRAQ_ACCESS_LOG": "1",
        "QTRAQ_LOG_LEVEL": "info",
        "QTRAQ_LOG_FORMAT": "json",
    }
    with ServeProcess(tmp_path / "data", env=env, args=args) as srv:
        yield srv


@dataclass
class Flow:
    """What the flow did, and every private string it sent or received."""

    display: ClientConnection
    admin: httpx.Client
    called: dict[str, object]
    private: list[str] = field(default_factory=list)


def staff_login(url: str) -> tuple[httpx.Client, list[str]]:
    c = httpx.Client(base_url=f"{url}/api/v1", timeout=10)
    r = c.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c, [ADMIN_PASSWORD, r.json()["csrf_token"], *c.cookies.values()]


def _receive_until(ws: ClientConnection, kind: str) -> dict[str, object]:
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] == kind:
            return msg  # type: ignore[no-any-return]


def run_flow(srv: ServeProcess) -> Flow:
    """The morning. The caller closes ``flow.display`` and ``flow.admin``."""
    admin, private = staff_login(srv.url)
    key = admin.post("/admin/clinics/c1/display-keys", json={"label": "lobby"})
    assert key.status_code == 201, key.text
    display_key = key.json()["key"]
    private.append(display_key)
    display = connect(f"ws://{srv.url.split('://', 1)[1]}/ws/display/c1?key={display_key}")
    _receive_until(display, "snapshot")
    for person in WALK_INS:
        r = admin.post("/queues/gp/tickets", json={**person, "notify": True})
        assert r.status_code == 201, r.text
        token = r.json()["ticket"]["token"]
        private += [*person.values(), urllib.parse.quote(person["mobile"]), urllib.parse.quote(person["email"]),
                    token, r.json()["track_url"]]
        assert httpx.get(f"{srv.url}/api/v1/t/{token}").status_code == 200
        assert httpx.get(f"{srv.url}/t/{token}").status_code == 200
    pressed = admin.post("/queues/gp/next", json={"counter": "3"})
    assert pressed.status_code == 200 and pressed.json()["called"], pressed.text
    called = _receive_until(display, "call")
    patient = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=10)
    r = patient.post("/accounts", json={**ACCOUNT, "consent": {"notifications": True, "analytics": False}})
    assert r.status_code == 201, r.text
    r = patient.post("/auth/account-login", json={"email": ACCOUNT["email"], "password": ACCOUNT["password"]})
    assert r.status_code == 200, r.text
    private += [*ACCOUNT.values(), urllib.parse.quote(ACCOUNT["mobile"]), r.json()["csrf_token"],
                *patient.cookies.values()]
    assert patient.get("/me").json()["name"] == ACCOUNT["name"]
    patient.close()
    return Flow(display, admin, called, private)


# -- /metrics --------------------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            samples[key] = samples.get(key, 0.0) + s.value
    return samples


def scrape(url: str) -> tuple[str, Samples]:
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text, samples_of(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def until(url: str, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``check`` holds; the samples that passed."""
    found: list[Samples] = []

    def ok() -> bool:
        found[:] = [scrape(url)[1]]
        return check(found[0])

    wait_until(ok, 20, what)
    return found[0]
