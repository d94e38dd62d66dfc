"""Feedback after the visit: the link sent when a ticket is done (real notifier, RQ workers and
SMS sink), one rating per ticket against the running server, flooding refused, and the admin's
aggregates with small-count suppression and a CSV a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import redis.asyncio as aioredis

from qtraq_live.queue_engine import QueueEngine
from qtraq_live.runtime.duties import Context
from tests.support_accounts import Clinic, add_patient, clinic, portal, register  # noqa: F401
from tests.support_http import LiveServer, error_of
from tests.support_notify import Sink, Workers, await_until, notifier, notify_env, sink, smtp, workers  # noqa: F401


async def walk_in(ctx: Context, queue: str, i: int | None) -> dict[str, Any]:
    """A walk-in ticket as the issuing endpoint makes it (contact row first), notices on with a phone."""
    tid = await ctx.engine.allocate_ticket_id()
    if i is not None:
        await ctx.store.execute("INSERT INTO ticket_contacts (ticket_id, mobile, email, created_at) VALUES (?, ?, ?, 0)",
                                (tid, f"+9197{i:08d}", None))
    return await ctx.engine.issue(queue, ticket_id=tid, notify=i is not None)


def texts(sink: Sink, i: int) -> list[str]:
    return [r["message"] for r in sink.to(f"+9197{i:08d}")]


async def test_a_finished_patient_who_asked_for_notices_gets_one_feedback_link(
        notifier: Context, sink: Sink, workers: Workers, aredis: aioredis.Redis) -> None:  # noqa: F811
    engine: QueueEngine = notifier.engine
    await engine.create_clinic("fb", "City Clinic")
    await engine.create_queue("fb", "gp", "Dr Rao", "A")
    workers.start(1)
    told = await walk_in(notifier, "gp", 41)
    silent = await walk_in(notifier, "gp", None)  # no consent to notices: no link
    await await_until(lambda: texts(sink, 41), "issued")
    await engine.next("gp", counter="1")
    await engine.next("gp", counter="1")  # the first patient is done, the second called
    await engine.next("gp", counter="1")  # the second is done too
    await await_until(lambda: any("Rate your visit" in m for m in texts(sink, 41)), "the feedback link")
    link = next(m for m in texts(sink, 41) if "Rate your visit" in m)
    assert link.endswith(f"/t/{told['token']}")
    feedback_keys = [k async for k in aredis.scan_iter("qt:notice:t*:feedback_request:*")]
    assert feedback_keys == [f"qt:notice:t{told['id']}:feedback_request:once:sms"]
    assert silent["id"] != told["id"] and sum("Rate your visit" in m for m in texts(sink, 41)) == 1


def finished_ticket(live: LiveServer, desk: httpx.Client, queue: str = "gp") -> str:
    issued = desk.post(f"/queues/{queue}/tickets", json={})
    assert issued.status_code == 201, issued.text
    ticket = issued.json()["ticket"]
    assert desk.post(f"/queues/{queue}/next", json={"counter": "9"}).json()["called"]["id"] == ticket["id"]
    assert desk.post(f"/tickets/{ticket['id']}/done").status_code == 200
    return str(ticket["token"])


def test_a_done_visit_is_rated_once_and_nothing_else_is(portal: LiveServer) -> None:  # noqa: F811
    desk = portal.bearer("reception")
    public = portal.client()
    waiting = desk.post("/queues/gp/tickets", json={}).json()["ticket"]["token"]
    assert error_of(public.post(f"/feedback/{waiting}", json={"rating": 4})) == (409, "not_done")
    assert public.delete(f"/t/{waiting}").status_code in (200, 204)  # left the queue: still not rateable
    assert error_of(public.post(f"/feedback/{waiting}", json={"rating": 4})) == (409, "not_done")
    token = finished_ticket(portal, desk)
    for bad in ({"rating": 0}, {"rating": 6}, {"rating": "5"}, {}, {"rating": 5, "name": "x"},
                {"rating": 5, "comment": "x" * 501}):
        assert error_of(public.post(f"/feedback/{token}", json=bad))[0] == 422, bad
    assert error_of(public.post("/feedback/" + "A" * 32, json={"rating": 5})) == (404, "not_found")
    r = public.post(f"/feedback/{token}", json={"rating": 5, "comment": "  Kind staff  "})
    assert r.status_code == 201 and r.json()["rating"] == 5
    assert error_of(public.post(f"/feedback/{token}", json={"rating": 1})) == (409, "already_rated")
    with portal.db() as db:
        assert [tuple(r) for r in db.execute("SELECT rating, comment FROM feedback")] == [(5, "Kind staff")]


def test_feedback_flooding_from_one_address_is_rate_limited(portal: LiveServer) -> None:  # noqa: F811
    public = portal.client()
    answers = [public.post("/feedback/" + "B" * 32, json={"rating": 1}) for _ in range(31)]
    assert {r.status_code for r in answers[:30]} == {404}
    assert error_of(answers[30]) == (429, "rate_limited") and int(answers[30].headers["Retry-After"]) >= 1


def test_admins_see_aggregates_with_small_counts_suppressed_and_a_safe_csv(portal: LiveServer) -> None:  # noqa: F811
    desk = portal.bearer("reception")
    public = portal.client()
    for rating, comment in [(5, "Quick"), (4, None), (5, "=HYPERLINK(\"http://evil.example\")"), (3, None),
                            (2, "Long wait")]:
        assert public.post(f"/feedback/{finished_ticket(portal, desk)}",
                           json={"rating": rating, "comment": comment}).status_code == 201
    for rating in (1, 2):  # too few in this queue to publish
        assert public.post(f"/feedback/{finished_ticket(portal, desk, 'eye')}",
                           json={"rating": rating, "comment": "only me"}).status_code == 201
    admin = portal.bearer("admin")
    data = admin.get("/clinics/c1/feedback").json()
    gp = next(b for b in data["by_queue"] if b["queue"] == "gp")
    assert gp["count"] == 5 and gp["mean"] == 3.8 and gp["distribution"] == {"1": 0, "2": 1, "3": 1, "4": 1, "5": 2}
    assert sorted(gp["comments"]) == sorted(["Quick", "=HYPERLINK(\"http://evil.example\")", "Long wait"])
    eye = next(b for b in data["by_queue"] if b["queue"] == "eye")
    assert eye == {"queue": "eye", "suppressed": True}
    assert "only me" not in admin.get("/clinics/c1/feedback").text
    sheet = admin.get("/clinics/c1/feedback", params={"format": "csv"})
    assert sheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    gp_row = next(r for r in rows if r["queue"] == "gp")
    assert "'=HYPERLINK" in gp_row["comments"] and not gp_row["comments"].startswith("=")
    assert next(r for r in rows if r["queue"] == "eye")["comments"] == ""
    assert error_of(portal.bearer("reception").get("/clinics/c1/feedback"))[0] == 403
    assert error_of(admin.get("/clinics/c1/feedback", params={"from": "2026-13-01"}))[0] == 422
    bad_to = admin.get("/clinics/c1/feedback", params={"to": "2026-02-30"})  # the stats' range rules: the field named
    assert error_of(bad_to)[0] == 422 and bad_to.json()["error"]["message"].startswith("to")
    assert sheet.headers["content-disposition"] == f'attachment; filename="feedback-c1-{data["from"]}-{data["to"]}.csv"'
    assert error_of(admin.get("/clinics/nowhere/feedback"))[0] == 404
    chart = portal.login(portal.add_user("admin")).get(portal.url + "/admin/charts/c1/feedback-by-day.svg")
    assert chart.status_code == 200 and chart.text.startswith("<svg") and "only me" not in chart.text


def test_erasing_an_account_blanks_the_comments_on_its_visits(portal: LiveServer, clinic: Clinic) -> None:  # noqa: F811
    p = register(portal)
    me = add_patient(p)
    appt = p.post("/me/appointments", {"patient": me["id"], "queue": clinic.by_date, "date": clinic.today()}).json()
    desk = portal.bearer("reception")
    ticket = desk.post(f"/appointments/{appt['id']}/check-in").json()["ticket"]
    desk.post(f"/queues/{clinic.by_date}/next", json={"counter": "1"})
    desk.post(f"/tickets/{ticket['id']}/done")
    token = p.get("/me/appointments").json()["appointments"][0]["ticket"]["token"]
    assert portal.client().post(f"/feedback/{token}", json={"rating": 2, "comment": "Dr Rao was rude"}).status_code == 201
    assert p.client.delete("/me").status_code == 204
    with portal.db() as db:
        assert [tuple(r) for r in db.execute("SELECT rating, comment FROM feedback")] == [(2, None)]
