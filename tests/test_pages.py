"""The pages over HTTP: who may see each one, what it embeds, the security headers, the
translation catalogue, and the admin endpoints behind the admin page."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from qtraq_live.record.persister import Persister
from tests.support_http import LiveServer, app_server, error_of  # noqa: F401

SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)
DATA_BLOCK = re.compile(r'<script type="application/json" id="qt-data">(.*?)</script>', re.S)


def page_data(html: str) -> dict[str, object]:
    match = DATA_BLOCK.search(html)
    assert match, "page has no data block"
    data: dict[str, object] = json.loads(match.group(1))
    return data


def assert_safe_page(r: httpx.Response) -> None:
    """Strict CSP, and every script either a file from /static or a JSON data block."""
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    for attrs in SCRIPT.findall(r.text):
        assert 'src="/static/' in attrs or 'type="application/json"' in attrs, attrs
    assert not re.search(r"\son[a-z]+\s*=", r.text), "inline event handler"
    assert "style=" not in r.text


CONTROL = re.compile(r"<(input|select|textarea)\b([^>]*)>", re.I)


def assert_labelled(html: str) -> None:
    """Every form control has a <label for> or an aria-label (screen readers name it)."""
    labels = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', html))
    for tag, attrs in CONTROL.findall(html):
        control_id = re.search(r'\bid="([^"]+)"', attrs)
        assert "aria-label=" in attrs or (control_id and control_id.group(1) in labels), f"<{tag}{attrs}>"


@pytest.fixture
def clinic(app_server: LiveServer) -> LiveServer:
    app_server.clinic("c1", ("gp", "eye"), self_checkin=True)
    return app_server


def issue(server: LiveServer, queue: str = "gp", name: str | None = "Asha Rao") -> dict[str, object]:
    ticket: dict[str, object] = server.run(server.engine.issue(queue, name=name))
    return ticket


def display_key(server: LiveServer, clinic_id: str = "c1") -> str:
    admin = server.staff("admin")
    r = admin.post(f"/admin/clinics/{clinic_id}/display-keys", json={"label": "hall"})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def test_display_needs_a_valid_key_for_its_clinic(clinic: LiveServer) -> None:
    key = display_key(clinic)
    assert httpx.get(f"{clinic.url}/display/c1").status_code == 401
    assert httpx.get(f"{clinic.url}/display/c1?key=wrong-key-wrong-key-wrong").status_code == 401
    assert httpx.get(f"{clinic.url}/display/nope?key={key}").status_code == 401  # the key names another clinic
    r = httpx.get(f"{clinic.url}/display/c1?key={key}")
    assert r.status_code == 200
    assert_safe_page(r)
    data = page_data(r.text)
    assert data["ws_path"] == f"/ws/display/c1?key={key}" and data["speech_lang"] == "en-IN"
    assert '<html lang="en">' in r.text


def test_display_speaks_the_clinic_language(app_server: LiveServer) -> None:
    app_server.run(app_server.engine.create_clinic("hc", "Hindi Clinic", timezone="Asia/Kolkata", lang="hi"))
    key = display_key(app_server, "hc")
    r = httpx.get(f"{app_server.url}/display/hc?key={key}")
    assert '<html lang="hi">' in r.text and page_data(r.text)["speech_lang"] == "hi-IN"
    assert "हाल की पुकार" in r.text


def test_patient_page_shows_the_ticket_but_never_the_name(clinic: LiveServer) -> None:
    ticket = issue(clinic)
    issue(clinic, name="Other Person")
    r = httpx.get(f"{clinic.url}/t/{ticket['token']}")
    assert r.status_code == 200
    assert_safe_page(r)
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text)
    weight = len(r.content) + sum(len(httpx.get(clinic.url + a).content) for a in assets)
    assert weight < 40_000, weight  # a slow 3G phone: small page, no image, no web font
    assert "Asha" not in r.text and "Other" not in r.text
    data = page_data(r.text)
    assert data["ticket"] == {"label": "A-001", "status": "waiting", "position": 1, "ahead": 0,
                              **{k: data["ticket"][k] for k in ("eta_s", "eta_low_s", "eta_high_s")},  # type: ignore[index]
                              "counter": None,
                              "queue": {"name": "Queue gp"}, "clinic": {"name": "Clinic c1"},
                              "version": data["ticket"]["version"]}  # type: ignore[index]
    assert r.headers["referrer-policy"] == "no-referrer"


def test_patient_page_unknown_token_is_a_404_page_in_hindi_when_asked(clinic: LiveServer) -> None:
    r = httpx.get(f"{clinic.url}/t/{'x' * 32}?lang=hi")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="hi">' in r.text and "टिकट लिंक" in r.text


def test_join_page_only_for_self_checkin_queues(app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",), self_checkin=False)
    app_server.run(app_server.engine.create_queue("c1", "walk", "Walk-in", "W", self_checkin=True))
    assert httpx.get(f"{app_server.url}/join/gp").status_code == 404
    assert httpx.get(f"{app_server.url}/join/gp/qr").status_code == 404
    assert httpx.get(f"{app_server.url}/join/none").status_code == 404
    r = httpx.get(f"{app_server.url}/join/walk")
    assert r.status_code == 200 and 'id="join-form"' in r.text
    assert page_data(r.text)["api_path"] == "/api/v1/public/queues/walk/join"
    assert_safe_page(r)
    assert_labelled(r.text)
    poster = httpx.get(f"{app_server.url}/join/walk/qr")
    assert poster.status_code == 200 and "<svg" in poster.text and f"{app_server.url}/join/walk" in poster.text


def test_print_slip_is_for_staff_and_may_be_framed_by_our_pages(clinic: LiveServer) -> None:
    ticket = issue(clinic)
    url = f"{clinic.url}/tickets/{ticket['id']}/print"
    assert httpx.get(url).status_code == 401
    desk = clinic.staff("reception")
    r = desk.get(url + "?width=58")
    assert r.status_code == 200 and 'class="slip w58"' in r.text and "A-001" in r.text and "<svg" in r.text
    assert r.headers["x-frame-options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert desk.get(f"{clinic.url}/tickets/999999/print").status_code == 404
    other = httpx.get(f"{clinic.url}/reception")
    assert other.headers["x-frame-options"] == "DENY"


def test_reception_shows_login_then_the_console_with_its_csrf_token(clinic: LiveServer) -> None:
    r = httpx.get(f"{clinic.url}/reception?queue=eye&counter=3")
    assert r.status_code == 200 and 'id="login-form"' in r.text and "csrf" not in page_data(r.text)
    desk = clinic.staff("reception")
    r = desk.get(f"{clinic.url}/reception?queue=eye&counter=3")
    assert_safe_page(r)
    assert_labelled(r.text)
    data = page_data(r.text)
    assert data["csrf"] == desk.headers["X-CSRF-Token"]
    assert data["preselect"] == {"queue": "eye", "counter": "3"}
    assert [q["id"] for q in data["clinics"][0]["queues"]] == ["gp", "eye"]  # type: ignore[index]


def test_a_doctor_sees_only_their_queues(clinic: LiveServer) -> None:
    doc = clinic.staff("doctor", ("eye",))
    data = page_data(doc.get(f"{clinic.url}/reception").text)
    assert [q["id"] for q in data["clinics"][0]["queues"]] == ["eye"]  # type: ignore[index]


def test_admin_page_is_for_admins(clinic: LiveServer) -> None:
    assert 'id="login-form"' in httpx.get(f"{clinic.url}/admin").text
    assert clinic.staff("reception").get(f"{clinic.url}/admin").status_code == 403
    clinic.run(clinic.engine.create_clinic("new", "New Clinic"))
    r = clinic.staff("admin").get(f"{clinic.url}/admin")
    assert r.status_code == 200 and 'id="key-form"' in r.text
    assert_safe_page(r)
    assert_labelled(r.text)
    assert [c["id"] for c in page_data(r.text)["clinics"]] == ["c1", "new"]  # type: ignore[union-attr]


def test_admin_users_endpoints(clinic: LiveServer) -> None:
    admin = clinic.staff("admin")
    r = admin.post("/admin/users", json={"username": "dr.rao", "password": "long-enough-pw", "role": "doctor",
                                         "queues": ["eye"]})
    assert r.status_code == 201 and r.json()["user"]["queues"] == ["eye"]
    assert error_of(admin.post("/admin/users", json={"username": "x1", "password": "long-enough-pw",
                                                     "role": "doctor"})) == (422, "invalid_field")
    assert error_of(admin.post("/admin/users", json={"username": "x2", "password": "long-enough-pw",
                                                     "role": "admin", "colour": "red"})) == (422, "unknown_field")
    assert error_of(admin.post("/admin/users", json={"username": "dr.rao", "password": "long-enough-pw",
                                                     "role": "reception"}))[0] == 409
    users = admin.get("/admin/users").json()["users"]
    assert "dr.rao" in [u["username"] for u in users] and all("password_hash" not in u for u in users)
    assert error_of(clinic.staff("reception").get("/admin/users")) == (403, "forbidden")
    assert error_of(clinic.client().get("/admin/users"))[0] == 401


def test_display_keys_can_be_listed_and_revoked(clinic: LiveServer) -> None:
    admin = clinic.staff("admin")
    created = admin.post("/admin/clinics/c1/display-keys", json={"label": "hall"}).json()
    assert created["display_url"].endswith(f"/display/c1?key={created['key']}")
    assert httpx.get(created["display_url"]).status_code == 200
    listed = admin.get("/admin/clinics/c1/display-keys").json()["keys"]
    assert [(k["id"], k["label"], k["revoked_at"]) for k in listed] == [(created["id"], "hall", None)]
    assert "key" not in listed[0] and "key_hash" not in listed[0]
    assert admin.delete(f"/admin/clinics/c1/display-keys/{created['id']}").status_code == 200
    assert httpx.get(created["display_url"]).status_code == 401
    assert error_of(admin.delete(f"/admin/clinics/c1/display-keys/{created['id']}"))[0] == 404
    assert error_of(admin.post("/admin/clinics/zz/display-keys", json={}))[0] == 404
    assert error_of(admin.post("/admin/clinics/c1/display-keys", json={"label": "x" * 81})) == (422, "invalid_field")


def test_stats_charts_are_svg_for_admins(clinic: LiveServer) -> None:
    async def serve_six() -> int:
        for _ in range(6):
            await clinic.engine.issue("gp")
        for _ in range(7):  # the 7th press finishes the 6th patient
            await clinic.engine.next("gp", "1")
        return await Persister(clinic.app.state.redis, clinic.app.state.store).drain()

    assert clinic.run(serve_six()) > 0
    url = f"{clinic.url}/admin/charts/c1/served-per-day.svg"
    assert httpx.get(url).status_code == 401
    admin = clinic.staff("admin")
    for name in ("served-per-day", "wait-by-hour"):
        r = admin.get(f"{clinic.url}/admin/charts/c1/{name}.svg")
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        assert r.text.startswith("<svg") and "<title" in r.text and "<script" not in r.text
    served = admin.get(url).text
    assert ": 6 patients</title>" in served and served.count("<rect x=") == 14
    waits = admin.get(f"{clinic.url}/admin/charts/c1/wait-by-hour.svg").text
    assert ">08</text>" in waits and ">20</text>" in waits  # the usual opening hours at least
    assert admin.get(f"{clinic.url}/admin/charts/c1/nope.svg").status_code == 404


def test_static_files_are_served(app_server: LiveServer) -> None:
    for name in ("common.js", "display.js", "ticket.js", "reception.js", "admin.js", "base.css", "print.css"):
        assert httpx.get(f"{app_server.url}/static/{name}").status_code == 200, name


# The catalogue's own tests (complete, no unused key, plural forms, language choice) are in
# tests/test_languages.py.


def test_a_form_never_takes_a_name_or_address_the_api_refuses() -> None:
    """Each name and e-mail input is bounded by the constant the API checks, never by a copy."""
    from pathlib import Path

    from qtraq_live.display import render
    from qtraq_live.validation import EMAIL_MAX, NAME_MAX

    templates = Path(render.__file__).parent / "templates"
    uses = 0
    for path in templates.glob("*.html"):
        text = path.read_text()
        assert f'maxlength="{NAME_MAX}"' not in text and f'maxlength="{EMAIL_MAX}"' not in text, path.name
        uses += text.count('maxlength="{{ name_max }}"') + text.count('maxlength="{{ email_max }}"')
    assert uses >= 16  # names of patients, nominees, clinics, queues, places; a nominee's address
    html = render._env.from_string('<input maxlength="{{ name_max }}"><input maxlength="{{ email_max }}">').render()
    assert html == f'<input maxlength="{NAME_MAX}"><input maxlength="{EMAIL_MAX}">'
