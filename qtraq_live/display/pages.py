"""The page routes: TV display, patient ticket, self check-in and its QR poster, the
printable slip, the reception console and the admin page.

Pages are thin: they check who may see them, gather what the first paint needs from the
engine, and hand the rest to the page script (live data comes over the WebSockets, writes
go to the REST API with the session's CSRF token, which the page embeds for its script).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import segno
from babel.dates import format_datetime
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ..accounts import appointments
from ..accounts import payments
from ..api.issue import track_url
from ..engine import redis_keys as keys
from ..languages import STAFF_LANGS
from ..queue_engine import QueueEngine, public_ticket
from ..web import auth
from ..web.request import public_base
from . import charts, definitions, i18n
from .render import error_page, page, request_lang

logger = logging.getLogger(__name__)

LEAVABLE = ("waiting", "called", "serving", "skipped")
PRINT_WIDTHS = ("58", "80")


def _engine(request: Request) -> QueueEngine:
    engine: QueueEngine = request.app.state.engine
    return engine


def _base_url(request: Request) -> str:
    return public_base(request)


def _qr_svg(url: str, title: str) -> str:
    """A QR code as inline SVG (no script, no style attribute: the page CSP allows it)."""
    qr = segno.make(url, error="m")
    svg: str = qr.svg_inline(scale=4, border=2, title=title, dark="#000", light="#fff")
    return svg


async def _staff(request: Request) -> tuple[auth.Staff | None, str | None]:
    """The signed-in staff user of the session cookie and the session's CSRF token."""
    found = await auth.staff_session(request.app.state.redis, request.cookies.get(auth.SESSION_COOKIE))
    if found is None:
        return None, None
    session, user = found
    return user, session.get("csrf")


async def _clinics_for(engine: QueueEngine, user: auth.Staff, archived: bool = False) -> list[dict[str, Any]]:
    """Clinics with the queues this user may work on (a doctor sees only their own); archived
    queues only when asked (the admin page)."""
    out = []
    for cid in await engine.clinic_ids():
        clinic = await engine.get_clinic(cid)
        if clinic is None:
            continue
        queues = [q for q in clinic["queues"] if (user.at_least("reception") or q["id"] in user.queues)
                  and (archived or not q["archived"])]
        if queues or user.at_least("admin"):  # an admin adds the first queue of a new clinic
            out.append({**{k: clinic[k] for k in ("id", "name", "timezone", "lang", "mask_names")},
                        "queues": [{k: q[k] for k in ("id", "name", "prefix", "self_checkin", "paused",
                                                       "avg_service_s", "notify_ahead", "archived")}
                                   for q in queues]})
    return out


def _local_time(iso_utc: str | None, tz: str, lang: str) -> str:
    if not iso_utc:
        return ""
    at = datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).astimezone(ZoneInfo(tz))
    return format_datetime(at, "d MMM y, HH:mm", locale=lang)  # the month's name in the slip's language


async def display_page(request: Request) -> Response:
    clinic_id = request.path_params["clinic"]
    key = request.query_params.get("key", "")
    # the key first: an anonymous request costs one GET, and learns nothing about the clinic
    if not key or await request.app.state.redis.get(keys.display_key(key)) != clinic_id:
        logger.info("display page refused for clinic %s: missing or invalid key", clinic_id)
        return error_page(request, 401, "error.display_key")
    clinic = await definitions.clinic_info(request, clinic_id)
    if clinic is None:
        return error_page(request, 404, "error.no_clinic")
    lang = request_lang(request, clinic.get("lang"))
    settings = request.app.state.settings
    shown = _shown_queues(request, await definitions.queue_ids(request, clinic_id))
    data = {
        "ws_path": f"/ws/display/{clinic_id}?key={key}" + (f"&queues={','.join(shown)}" if shown else ""),
        "timezone": clinic["timezone"], "queues": shown,
        "speech_lang": i18n.SPEECH_TAGS[lang], "next_count": 4, "recent_count": 5, "call_ms": 8000,
        "serving_clear_ms": settings["display.serving_clear_min"] * 60_000, "page_ms": settings["display.page_s"] * 1000,
        "frozen_after_ms": settings["display.frozen_after_s"] * 1000,
    }
    return page(request, "display.html", lang=lang, data=data, clinic={"name": clinic["name"]}, memo=True)


def _shown_queues(request: Request, known: set[str]) -> list[str]:
    """``?queues=a,b``: the clinic's queues this screen shows, in the order given (empty: all).
    Names that are not queues of this clinic (``known``) are left out."""
    asked = request.query_params.get("queues", "").split(",")
    return list(dict.fromkeys(q for q in asked if q in known))


async def ticket_page(request: Request) -> Response:
    token = request.path_params["token"]
    ticket = await _engine(request).ticket_by_token(token)
    if ticket is None:
        return error_page(request, 404, "error.no_ticket")
    lang = request_lang(request, ticket.get("lang"))
    t = i18n.translator(lang)
    view = public_ticket(ticket, ticket["queue_name"], ticket["clinic_name"], ticket["version"])
    status_text = t(f"js.status_{view['status']}")
    if view["status"] == "called" and view["counter"]:
        status_text += " " + t("js.go_to", where=_where(t, view["counter"]))
    upi = None if view["status"] == "cancelled" else await payments.ticket_offer(
        request.app.state.redis, ticket["clinic"], ticket["clinic_name"] or "", ticket["queue"], view["label"])
    # the page is shared by every ticket in the same status and language; these are this one's
    texts = {"label": view["label"], "clinic_name": view["clinic"]["name"] or "", "queue_name": view["queue"]["name"],
             "status_text": status_text, "position_text": str(view["position"] or "–"),
             "ahead_text": "–" if view["ahead"] is None else str(view["ahead"]),
             "eta_text": _wait_range(t, view["eta_low_s"], view["eta_high_s"])}
    entries = {"ticket": view, "ws_path": f"/ws/t/{token}", "api_path": f"/api/v1/t/{token}",
               "feedback_path": f"/api/v1/feedback/{token}"}
    return page(request, "ticket.html", lang=lang, data={"leavable": LEAVABLE}, memo=upi is None,
                fills=texts, data_fills=entries, ticket_status=view["status"], leavable=LEAVABLE, upi=upi)


def _where(t: i18n.Translator, counter: str) -> str:
    return t("js.counter_n", n=counter) if counter.isdigit() else counter


def _wait_range(t: i18n.Translator, low: int | None, high: int | None) -> str:
    """As ``QT.waitRange`` in common.js: "about 25–40 min", one figure when both ends round alike."""
    if low is None or high is None:
        return "–"
    lo, hi = max(1, round(low / 60)), max(1, round(high / 60))
    if high < 30:
        return t("js.under_minute")
    return t("js.minutes", n=hi) if lo >= hi else t("js.eta_range", low=lo, high=hi)


async def _self_checkin_queue(request: Request) -> tuple[dict[str, Any], str] | None:
    """The queue of a /join page (with ``n_waiting``) and its clinic's name, or None unless it
    takes self check-in. From cached definitions: nothing here grows with the queue."""
    found = await definitions.queue_definition(request, request.path_params["queue"])
    if found is None or not found[0]["self_checkin"] or found[0].get("archived"):
        return None
    return found[0], found[1]["name"]


async def join_page(request: Request) -> Response:
    found = await _self_checkin_queue(request)
    if found is None:
        return error_page(request, 404, "error.no_join")
    queue, clinic_name = found
    data = {"api_path": f"/api/v1/public/queues/{queue['id']}/join"}
    # what the page shows, and only that: the text is shared until one of these changes
    shown = {"name": queue["name"], "paused": bool(queue["paused"])}
    return page(request, "join.html", lang=request_lang(request), data=data, queue=shown,
                clinic_name=clinic_name, waiting=queue["n_waiting"], memo=True)


async def join_qr_page(request: Request) -> Response:
    found = await _self_checkin_queue(request)
    if found is None:
        return error_page(request, 404, "error.no_join")
    queue, clinic_name = found
    lang = request_lang(request)
    url = f"{_base_url(request)}/join/{queue['id']}"
    qr = _qr_svg(url, i18n.translator(lang)("join.poster_title", queue=queue["name"]))
    return page(request, "join_qr.html", lang=lang, queue=queue, clinic_name=clinic_name, qr_svg=qr, join_url=url)


async def print_page(request: Request) -> Response:
    user, _ = await _staff(request)
    if user is None or not user.at_least("reception"):
        return error_page(request, 401 if user is None else 403, "error.staff_only")
    engine = _engine(request)
    ticket_id = request.path_params["ticket_id"]
    ticket = await engine.ticket(ticket_id)
    token = await engine.ticket_token(ticket_id) if ticket else None
    if ticket is None or token is None:
        return error_page(request, 404, "error.no_ticket")
    clinic = await engine.get_clinic(ticket["clinic"])
    queue = await engine.get_queue(ticket["queue"])
    lang = request_lang(request, clinic["lang"] if clinic else None)
    tz = clinic["timezone"] if clinic else "UTC"
    width = request.query_params.get("width", "80")
    width = width if width in PRINT_WIDTHS else "80"
    auto = "&autoprint=1" if request.query_params.get("autoprint") == "1" else ""
    url = track_url(request, token)
    return page(request, "print.html", lang=lang, frameable=True, ticket=ticket, width=width, auto_q=auto,
                clinic_name=clinic["name"] if clinic else "", queue_name=queue["name"] if queue else "",
                issued_text=_local_time(ticket["created_at"], tz, lang), qr_svg=_qr_svg(url, ticket["label"]))


async def reception_page(request: Request) -> Response:
    user, csrf = await _staff(request)
    lang = request_lang(request, langs=STAFF_LANGS)
    if user is None:
        return page(request, "reception.html", lang=lang, langs=STAFF_LANGS, user=None)
    clinics = await _clinics_for(_engine(request), user)
    preselect = {k: request.query_params.get(k, "")[:40] for k in ("queue", "counter")}
    data = {"csrf": csrf, "clinics": clinics, "preselect": preselect, "print_width": 80,
            "desk": user.at_least("reception")}  # a doctor's console shows only what a doctor may do
    return page(request, "reception.html", lang=lang, langs=STAFF_LANGS, data=data, user=user)


async def admin_page(request: Request) -> Response:
    user, csrf = await _staff(request)
    lang = request_lang(request, langs=STAFF_LANGS)
    if user is None:
        return page(request, "admin.html", lang=lang, langs=STAFF_LANGS, user=None)
    if not user.at_least("admin"):
        return error_page(request, 403, "error.admin_only", lang=lang)
    settings = request.app.state.settings
    clinics = await _clinics_for(_engine(request), user, archived=True)
    for c in clinics:  # each queue's appointment slots, set up on this page
        for q in c["queues"]:
            slots = await appointments.get_slots(request.app.state.store, q["id"])
            q["slots"] = dict(slots) if slots else None
    channels = {name: bool(settings[f"notify.{name}"]) for name in ("email", "sms", "whatsapp")}
    data = {"csrf": csrf, "clinics": clinics, "base_url": _base_url(request),
            "notices": _api_has(request, "/notifications"), "test_send": _api_has(request, "/notifications/test"),
            "channel_overrides": _api_has(request, "/clinics/{clinic}/notify-channels")}
    return page(request, "admin.html", lang=lang, langs=STAFF_LANGS, data=data, user=user, clinics=clinics, channels=channels,
                chart_names=charts.CHARTS)


def _api_has(request: Request, path: str) -> bool:
    """Whether this server routes ``/api/v1{path}`` (sections for optional areas show only then)."""
    for route in request.app.routes:
        if isinstance(route, Mount) and route.path == "/api/v1":
            return any(getattr(r, "path", None) == path for r in route.routes)
    return False


async def chart_svg(request: Request) -> Response:
    user, _ = await _staff(request)
    if user is None or not user.at_least("admin"):
        return Response(status_code=401 if user is None else 403)
    name = request.path_params["name"]
    if name not in charts.CHARTS or request.app.state.store is None:
        return Response(status_code=404)
    svg = await charts.render(request.app.state.store, request.path_params["clinic"], name,
                              i18n.translator(request_lang(request, langs=STAFF_LANGS)), int(time.time() * 1000))
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [
    Route("/display/{clinic}", display_page, name="display"),
    Route("/t/{token}", ticket_page, name="ticket"),
    Route("/join/{queue}", join_page, name="join"),
    Route("/join/{queue}/qr", join_qr_page, name="join_qr"),
    Route("/tickets/{ticket_id:int}/print", print_page, name="ticket_print"),
    Route("/reception", reception_page, name="reception"),
    Route("/admin", admin_page, name="admin"),
    Route("/admin/charts/{clinic}/{name}.svg", chart_svg, name="admin_chart"),
]
