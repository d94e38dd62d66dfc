"""A hospital-sized site for the front-desk browser tests, and a check that no text is clipped.

``frontdesk_site`` seeds, before a real ``qtraq-live serve`` starts: clinic ``city`` (two
queues, names masked by default) and clinic ``hosp`` (a long name, eight queues with long
doctors' names, names not masked), staff users (desk: reception, boss: admin, doc: a doctor of
``gp``), an API token and a display key for each clinic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from qtraq_live.record import access
from qtraq_live.runtime.embedded_redis import EmbeddedRedis
from tests.support_serve import ServeProcess, seeded_serve, seeding

PASSWORD = "correct-horse-battery"
HOSPITAL_NAME = "Sri Venkateshwara Multispeciality Hospital and Research Centre, OPD Block B"
HOSPITAL_QUEUES = [
    ("cardio", "Dr. Lakshminarayanan Venkataraman — Cardiology", "A"),
    ("ortho", "Orthopaedics and Sports Medicine", "B"),
    ("paeds", "Dr. Priyadarshini Chandrasekharan — Paediatrics", "C"),
    ("derma", "Dermatology", "D"),
    ("ent", "Ear, Nose and Throat (ENT)", "E"),
    ("gyn", "Dr. Anuradha Raghunathan — Obstetrics and Gynaecology", "F"),
    ("lab", "Laboratory and Sample Collection", "L"),
    ("pharm", "Pharmacy", "P"),
]
LONG_NAMES = ["Venkata Lakshmi Narasimha Subrahmanyam", "Mohammed Abdul Rahman Siddiqui", "Anjali",
              "Thiruvenkadam Ramachandran Iyer", "Gurpreet Kaur Dhillon", "Sai"]
COUNTERS = ["1", "2", "Room 204", "Minor OT 2", "12", "Consultation Room 7"]

# Every visible text node must lie inside the screen and inside every box that clips it
# (overflow other than visible), and no element may cut its text with an ellipsis.
CLIPPED_TEXT_JS = """() => {
  const bad = [], W = innerWidth, H = innerHeight, TOL = 2;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const text = n.textContent.trim();
    if (!text) continue;
    const el = n.parentElement;
    if (el.closest('[hidden], template, script, .skip, .visually-hidden')) continue;
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden') continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    const rects = [...range.getClientRects()].filter(r => r.width > 0 && r.height > 0);
    const clips = [{left: 0, top: 0, right: W, bottom: H}];
    for (let a = el; a && a !== document.documentElement; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.overflowX !== 'visible' || s.overflowY !== 'visible') clips.push(a.getBoundingClientRect());
    }
    for (const r of rects) {
      if (clips.some(c => r.left < c.left - TOL || r.right > c.right + TOL || r.top < c.top - TOL
                          || r.bottom > c.bottom + TOL)) { bad.push(text.slice(0, 60)); break; }
    }
    if (cs.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth) bad.push('… ' + text.slice(0, 60));
  }
  return [...new Set(bad)];
}"""

# The page scrolls sideways (a phone page wider than the phone).
SIDEWAYS_JS = "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"


def clipped_text(page: Page) -> list[str]:
    found: list[str] = page.evaluate(CLIPPED_TEXT_JS)
    return found


@dataclass
class FrontdeskSite:
    srv: ServeProcess
    api: httpx.Client
    keys: dict[str, str]  # clinic -> display key
    data_dir: Path

    @property
    def url(self) -> str:
        return self.srv.url

    def issue(self, queue: str, name: str | None = None, **body: Any) -> dict[str, Any]:
        r = self.api.post(f"/queues/{queue}/tickets", json={**({"name": name} if name else {}), **body})
        assert r.status_code == 201, r.text
        return dict(r.json()["ticket"])

    def reset(self, queues: tuple[str, ...] = ("gp", "eye")) -> None:
        """Cancel every active ticket of these queues and resume them."""
        for queue in queues:
            snap = self.api.get(f"/queues/{queue}").json()
            for t in snap["now_serving"] + snap["waiting"]:
                self.api.post(f"/tickets/{t['id']}/cancel")
            if snap["paused"]:
                self.api.post(f"/queues/{queue}/resume")

    def fill_hospital(self) -> None:
        """Ten waiting per queue, six counters busy on each (long names and counter names)."""
        for queue, _, _ in HOSPITAL_QUEUES:
            snap = self.api.get(f"/queues/{queue}").json()
            if len(snap["now_serving"]) >= len(COUNTERS):
                continue
            for i in range(16):
                self.issue(queue, LONG_NAMES[i % len(LONG_NAMES)])
            for counter in COUNTERS:
                r = self.api.post(f"/queues/{queue}/next", json={"counter": counter})
                assert r.status_code == 200, r.text


async def seed_site(data_dir: Path, redis_url: str, *, hospital: bool = True, doctor: bool = True,
                    token_user: str = "boss") -> tuple[str, dict[str, str]]:
    """Clinic ``city`` (queues gp, self check-in, and eye), with ``hospital`` clinic ``hosp`` too;
    staff desk (reception) and boss (admin), with ``doctor`` doc (gp) too; an API token of
    ``token_user`` and a display key per clinic, written before the server starts."""
    async with seeding(data_dir, redis_url) as (store, r, engine):
        await engine.create_clinic("city", "City Clinic", timezone="Asia/Kolkata")
        await engine.create_queue("city", "gp", "General Physician", "A", avg_service_s=240, self_checkin=True)
        await engine.create_queue("city", "eye", "Eye Clinic", "B", avg_service_s=420)
        if hospital:
            await engine.create_clinic("hosp", HOSPITAL_NAME, timezone="Asia/Kolkata", mask_names=False)
            for qid, name, prefix in HOSPITAL_QUEUES:
                await engine.create_queue("hosp", qid, name, prefix)
        await access.create_user(store, r, "desk", PASSWORD, "reception")
        await access.create_user(store, r, "boss", PASSWORD, "admin")
        if doctor:
            await access.create_user(store, r, "doc", PASSWORD, "doctor", ("gp",))
        token = await access.create_api_token(store, r, token_user)
        clinics = ("city", "hosp") if hospital else ("city",)
        keys = {c: await access.create_display_key(store, r, c, "hall") for c in clinics}
    return token, keys


@pytest.fixture(scope="module")
def frontdesk_site(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontdeskSite]:
    data = tmp_path_factory.mktemp("frontdesk") / "data"
    data.mkdir()
    with seeded_serve(redis_server.url, data, seed_site) as (srv, (token, keys)):
        with httpx.Client(base_url=f"{srv.url}/api/v1", headers={"Authorization": f"Bearer {token}"},
                          timeout=10) as api:
            yield FrontdeskSite(srv, api, keys, data)


class HasUrl(Protocol):
    @property
    def url(self) -> str: ...


def sign_in(context: BrowserContext, site: HasUrl, username: str) -> None:
    """A staff session cookie in the browser (the login form itself is tested on its own)."""
    r = context.request.post(f"{site.url}/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert r.ok, r.text()
