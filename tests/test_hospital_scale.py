"""Issue #17, a change costs what it changes: a press in one department visits that department's
sockets only; a screen shows only its ``?queues=``; definitions are read without tickets; public
pages do no work that grows with a queue. A real server, real sockets, the real engine on a real
Redis; what is counted is visits and Redis commands, never time."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from typing import Any

import httpx
import pytest
import redis as redis_sync
from playwright.sync_api import BrowserContext

from qtraq_live.display import i18n, page_memo, render
from qtraq_live.display.page_memo import PageMemo
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.realtime.hub_index import ClinicSubscribers
from qtraq_live.realtime.hub_send import Subscriber
from qtraq_live.record import access
from tests.support_browser import browser, open_page  # noqa: F401  (fixture)
from tests.support_frontdesk import FrontdeskSite, frontdesk_site, sign_in  # noqa: F401  (fixture)
from tests.support_http import LiveServer, app_server  # noqa: F401  (fixture)
from tests.support_hub import close_code, open_ws, recv, recv_until, ws_url

Json = dict[str, Any]
QUEUES = ("cardio", "derma", "ortho")


@pytest.fixture
def hospital(app_server: LiveServer) -> LiveServer:  # noqa: F811
    app_server.clinic("aiims", QUEUES, self_checkin=True)
    return app_server


@pytest.fixture
def visits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Subscriber]]:
    """Every subscriber the hub's index hands to the fan-out, in order (the server runs in this
    process, so wrapping the index's two look-ups sees every visit of every change)."""
    seen: list[Subscriber] = []
    screens_for = ClinicSubscribers.screens_for
    patients_for = ClinicSubscribers.patients_for

    def counted_screens(self: ClinicSubscribers, queues: Collection[str]) -> list[Subscriber]:
        out = screens_for(self, queues)
        seen.extend(out)
        return out

    def counted_patients(self: ClinicSubscribers, queues: Collection[str], ids: Any) -> list[Subscriber]:
        out = patients_for(self, queues, ids)
        seen.extend(out)
        return out

    monkeypatch.setattr(ClinicSubscribers, "screens_for", counted_screens)
    monkeypatch.setattr(ClinicSubscribers, "patients_for", counted_patients)
    yield seen


def display(live: LiveServer, queues: str | None = None, key: str | None = None) -> str:
    key = key or live.run(access.create_display_key(live.app.state.store, live.app.state.redis, "aiims"))
    return ws_url(live.url, f"/ws/display/aiims?key={key}" + ("" if queues is None else f"&queues={queues}"))


def cookie(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": f"qtraq_session={client.cookies['qtraq_session']}"}


async def test_a_press_in_one_department_visits_only_its_sockets(hospital: LiveServer, engine: QueueEngine,
                                                                 visits: list[Subscriber]) -> None:
    tickets = {q: [await engine.issue(q) for _ in range(3)] for q in QUEUES}
    ids = {q: {t["id"] for t in ts} for q, ts in tickets.items()}
    key = hospital.run(access.create_display_key(hospital.app.state.store, hospital.app.state.redis, "aiims"))
    doctor = hospital.staff("doctor", ("derma",))
    url = ws_url(hospital.url, "/ws/reception/aiims")
    sockets = {
        "patients": [await open_ws(ws_url(hospital.url, f"/ws/t/{t['token']}")) for q in QUEUES for t in tickets[q]],
        "cardio_tv": [await open_ws(display(hospital, "cardio", key))],
        "derma_tv": [await open_ws(display(hospital, "derma,ortho", key))],
        "hall_tv": [await open_ws(display(hospital, None, key))],
        "front_desk": [await open_ws(url, additional_headers=cookie(hospital.staff("reception")))],
        "derma_doctor": [await open_ws(url, additional_headers=cookie(doctor))],
    }
    try:
        for conns in sockets.values():
            for ws in conns:
                assert (await recv(ws))["type"] == "snapshot"
        visits.clear()

        await engine.next("cardio", "1")
        v = await engine.version("aiims")
        for ws in [*sockets["patients"][:3], *sockets["cardio_tv"], *sockets["hall_tv"], *sockets["front_desk"]]:
            assert (await recv_until(ws, v))[-1]["version"] == v

        # every visit was to a socket that shows cardio; each such socket was visited once
        patients = [s for s in visits if s.kind == "patient"]
        screens = [s for s in visits if s.kind != "patient"]
        assert {s.ticket_id for s in patients} == ids["cardio"] and len(patients) == 3
        assert all(s.allowed is None or "cardio" in s.allowed for s in screens)
        assert sorted((s.kind, sorted(s.allowed or ["*"])) for s in screens) == [
            ("display", ["*"]), ("display", ["cardio"]), ("reception", ["*"])]

        # the other departments' sockets got nothing of it: their next message is their own change
        visits.clear()
        await engine.next("derma", "2")
        v2 = await engine.version("aiims")
        for ws in [*sockets["patients"][3:6], *sockets["derma_tv"], *sockets["derma_doctor"]]:
            got = await recv(ws)
            assert got["version"] == v2, got
        assert {s.ticket_id for s in visits if s.kind == "patient"} == ids["derma"]
        assert not any(s.allowed == frozenset({"cardio"}) for s in visits)
    finally:
        for conns in sockets.values():
            for ws in conns:
                await ws.close()


async def test_a_transferred_ticket_is_visited_in_its_new_queue(hospital: LiveServer, engine: QueueEngine,
                                                                visits: list[Subscriber]) -> None:
    await engine.issue("ortho")  # arrived first: stays ahead after the transfer (places go by arrival)
    moving = await engine.issue("cardio")
    async with await open_ws(ws_url(hospital.url, f"/ws/t/{moving['token']}")) as ws:
        assert (await recv(ws))["queue"]["name"] == "Queue cardio"
        await engine.transfer(moving["id"], "ortho")
        moved = await recv(ws)
        assert (moved["queue"]["name"], moved["position"]) == ("Queue ortho", 2)
        visits.clear()
        await engine.issue("cardio")  # its old queue: no longer its sockets' business
        hospital.run(hospital.app.state.hub.caught_up("aiims", await engine.version("aiims")))
        assert not [s for s in visits if s.kind == "patient"]
        await engine.next("ortho")  # its new queue: it moves up
        assert (await recv(ws))["position"] == 1
        assert [s.ticket_id for s in visits if s.kind == "patient"] == [moving["id"]]


async def test_a_screen_shows_only_its_queues(hospital: LiveServer, engine: QueueEngine) -> None:
    a = await engine.issue("cardio", name="Ramesh Kumar")
    await engine.issue("derma", name="Sita Devi")
    async with await open_ws(display(hospital, "derma,%20ortho")) as ws:
        snap = await recv(ws)
        assert [q["id"] for q in snap["queues"]] == ["derma", "ortho"]
        assert "Ramesh" not in json.dumps(snap)
        await engine.next("cardio", "1")  # not shown: no update, no call
        await engine.next("derma", "2")
        v = await engine.version("aiims")
        upd, call = await recv(ws), await recv(ws)
        assert (upd["version"], [q["id"] for q in upd["queues"]]) == (v, ["derma"])
        assert (call["type"], call["queue"], call["counter"]) == ("call", "derma", "2")
        await engine.transfer(a["id"], "ortho")  # moves into a shown queue: the screen adds it
        moved = await recv(ws)
        assert [(t["label"], t["queue"]) for t in moved["tickets"]] == [(a["label"], "ortho")]
    # a resume gets only what the screen shows, and a snapshot lists only its queues
    async with await open_ws(display(hospital, "ortho") + f"&since={v - 2}") as ws:
        replay = await recv_until(ws, v + 1)
        assert [m["version"] for m in replay] == [v + 1]
    for bad in ("cardio,../x", "A", ",".join(f"q{i}" for i in range(101))):
        assert await close_code(display(hospital, bad)) == 1008


async def test_a_console_shows_only_the_queue_its_desk_works_on(hospital: LiveServer, engine: QueueEngine,
                                                                visits: list[Subscriber]) -> None:
    """``/ws/reception/{clinic}?queues=``: the snapshot is that department, not the hospital; a
    press elsewhere visits it not; a doctor gets of those queues only theirs."""
    await engine.issue("cardio", name="Ramesh Kumar")
    await engine.issue("derma", name="Sita Devi")
    url = ws_url(hospital.url, "/ws/reception/aiims")
    desk = cookie(hospital.staff("reception"))
    doctor = cookie(hospital.staff("doctor", ("derma",)))
    async with await open_ws(url + "?queues=derma", additional_headers=desk) as ws, \
            await open_ws(url + "?queues=cardio,derma", additional_headers=doctor) as doc, \
            await open_ws(url + "?queues=cardio", additional_headers=doctor) as nothing:
        for conn in (ws, doc):
            snap = await recv(conn)
            assert [q["id"] for q in snap["queues"]] == ["derma"]
            assert "Ramesh" not in json.dumps(snap) and "Sita Devi" in json.dumps(snap)
        assert (await recv(nothing))["queues"] == []
        visits.clear()
        await engine.next("cardio", "1")
        hospital.run(hospital.app.state.hub.caught_up("aiims", await engine.version("aiims")))
        assert not [s for s in visits if s.kind == "reception"]
        await engine.next("derma", "2")
        v = await engine.version("aiims")
        for conn in (ws, doc):
            upd = await recv(conn)  # the cardio press sent nothing: the next message is derma's
            assert (upd["version"], [q["id"] for q in upd["queues"]]) == (v, ["derma"])
        assert sorted(sorted(s.allowed or ["*"]) for s in visits if s.kind == "reception") == [["derma"], ["derma"]]
    assert await close_code(url + "?queues=../x", additional_headers=desk) == 1008


def command_calls(r: redis_sync.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def delta(r: redis_sync.Redis, action: Callable[[], Any], commands: tuple[str, ...]) -> dict[str, int]:
    before = command_calls(r)
    action()
    after = command_calls(r)
    return {c: after.get(c, 0) - before.get(c, 0) for c in commands}


def test_definitions_read_no_ticket(hospital: LiveServer, sync_redis: redis_sync.Redis) -> None:
    """``get_clinic`` and the /join read cost the same with 0 or 40 patients waiting (Redis
    counts the commands a script runs too)."""
    engine = hospital.engine

    def read() -> None:
        hospital.run(engine.get_clinic("aiims"))
        hospital.run(engine.queue_definition("cardio"))

    empty = delta(sync_redis, read, ("hgetall", "zrange", "zcard"))
    for _ in range(40):
        hospital.run(engine.issue("cardio"))
    full = delta(sync_redis, read, ("hgetall", "zrange", "zcard"))
    assert full == empty == {"hgetall": len(QUEUES) + 3, "zrange": 1, "zcard": len(QUEUES) + 1}
    queue, clinic = hospital.run(engine.queue_definition("cardio")) or ({}, {})
    assert (queue["n_waiting"], queue["self_checkin"], clinic["name"]) == (40, True, "Clinic aiims")
    assert hospital.run(engine.queue_definition("no-such-queue")) is None
    assert hospital.run(engine.queue_definition("../x")) is None


async def test_public_pages_use_the_mirror_and_check_the_key_first(hospital: LiveServer, engine: QueueEngine,
                                                                    sync_redis: redis_sync.Redis) -> None:
    for _ in range(5):
        await engine.issue("cardio")
    reads = ("evalsha", "hgetall", "zrange", "zcard", "get")

    def fetch(path: str) -> httpx.Response:
        return httpx.get(hospital.url + path)

    # no socket of the clinic here yet: one definitions read, no ticket
    page: list[httpx.Response] = []
    cold = delta(sync_redis, lambda: page.append(fetch("/join/cardio")), reads)
    assert page[0].status_code == 200 and "5" in page[0].text
    assert (cold["evalsha"], cold["zrange"]) == (1, 0)
    # with a screen open the clinic's mirror is in this process: nothing asked of Redis
    key = hospital.run(access.create_display_key(hospital.app.state.store, hospital.app.state.redis, "aiims"))
    async with await open_ws(display(hospital, "cardio", key)) as ws:
        await recv(ws)
        warm = delta(sync_redis, lambda: page.append(fetch("/join/cardio")), reads)
        assert page[-1].status_code == 200 and warm == dict.fromkeys(reads, 0)
        tv = delta(sync_redis, lambda: page.append(fetch(f"/display/aiims?key={key}")), reads)
        assert page[-1].status_code == 200 and tv == {**dict.fromkeys(reads, 0), "get": 1}
        # a bad key costs its one GET and nothing else, whatever the clinic
        for path in ("/display/aiims?key=wrong-key-wrong-key-wrong", "/display/nope?key=" + key):
            refused = delta(sync_redis, lambda p=path: page.append(fetch(p)), reads)  # type: ignore[misc]
            assert page[-1].status_code == 401 and refused == {**dict.fromkeys(reads, 0), "get": 1}
        assert fetch("/join/no-such-queue").status_code == 404


async def test_anonymous_pages_are_rendered_once_per_content(hospital: LiveServer, engine: QueueEngine,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A /join or /display page is rendered once for the same inputs, and again as soon as what
    it shows changes (the memo's key is its inputs: never stale); per-request parts stay per
    request: each display key's own page, the language cookie on a memo's answer too."""
    renders: list[str] = []
    html = render._html

    def counted(request: Any, template: str, *args: Any) -> str:
        renders.append(template)
        return html(request, template, *args)

    monkeypatch.setattr(render, "_html", counted)
    for _ in range(2):
        await engine.issue("cardio")
    keys = [hospital.run(access.create_display_key(hospital.app.state.store, hospital.app.state.redis, "aiims"))
            for _ in range(2)]
    async with await open_ws(display(hospital, "cardio", keys[0])) as ws:
        await recv(ws)
        async with httpx.AsyncClient(base_url=hospital.url) as client:
            first, again = [await client.get("/join/cardio") for _ in range(2)]
            assert first.text == again.text and renders == ["join.html"]
            await engine.issue("cardio")  # the page shows the waiting count: the next GET renders anew
            hospital.run(hospital.app.state.hub.caught_up("aiims", await engine.version("aiims")))
            third = await client.get("/join/cardio")
            assert third.text != first.text and renders == ["join.html"] * 2
            waiting = i18n.translator("en")("join.waiting_now", n=3)
            assert waiting in third.text and waiting not in first.text

            tvs = [(await client.get(f"/display/aiims?key={k}")).text for k in (*keys, keys[0])]
            assert renders.count("display.html") == 2 and tvs[0] == tvs[2]
            assert keys[0] in tvs[0] and keys[1] not in tvs[0] and keys[1] in tvs[1]

            hindi = [await client.get("/join/derma?lang=hi") for _ in range(2)]
            assert renders.count("join.html") == 3
            for answer in hindi:  # the memo's answer still sets the cookie and speaks Hindi
                assert answer.headers["set-cookie"].startswith("qt_lang=hi")
                assert 'lang="hi"' in answer.text
                assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_the_index_files_and_forgets_every_socket() -> None:
    """The bookkeeping alone: what a change reaches, a transfer, a rebuilt mirror, and nothing
    left behind once every socket is gone (an index that only grows would be a leak)."""

    async def send(message: Any) -> None:
        raise AssertionError("the index never sends")

    def sub(kind: str, ticket: int | None = None, shows: tuple[str, ...] | None = None) -> Subscriber:
        return Subscriber(None, send, "aiims", kind, ticket_id=ticket,  # type: ignore[arg-type]
                          key_hash="k" if kind == "display" else None,
                          allowed=None if shows is None else frozenset(shows))

    index = ClinicSubscribers()
    phone, twin, other = sub("patient", 1), sub("patient", 1), sub("patient", 2)
    hall, cardio_tv, desk, doctor = sub("display"), sub("display", shows=("cardio",)), sub("reception"), \
        sub("reception", shows=("derma", "ortho"))
    for s in (phone, twin, other, hall, cardio_tv, desk, doctor):
        index.add(s)
    assert index.patients_for({"cardio"}, []) == []  # not placed yet: only by its ticket
    assert {s.ticket_id for s in index.patients_for(set(), [1])} == {1}
    index.place(1, "cardio")
    index.place(2, "derma")
    assert set(index.patients_for({"cardio"}, [])) == {phone, twin}
    assert set(index.screens_for({"cardio"})) == {hall, cardio_tv, desk}
    assert set(index.screens_for({"cardio", "ortho"})) == {hall, cardio_tv, desk, doctor}
    assert set(index.displays()) == {hall, cardio_tv}
    index.follow([{"id": 1, "queue": "ortho"}, {"id": 99, "queue": "ortho"}])  # a transfer; 99 unwatched
    assert index.patients_for({"cardio"}, []) == [] and set(index.patients_for({"ortho"}, [])) == {phone, twin}
    index.refile({1: {"queue": "derma"}})  # a rebuilt mirror knows better
    assert set(index.patients_for({"derma"}, [])) == {phone, twin, other}
    for s in (phone, twin, other, hall, cardio_tv, desk, doctor, phone):
        index.remove(s)
    assert len(index) == 0
    left = (index.everything, index.screens, index.tickets, index.ticket_queue, index.watched)
    assert left == (set(), {}, {}, {}, {})


async def test_ticket_pages_share_one_frame_and_each_shows_its_own_ticket(hospital: LiveServer, engine: QueueEngine,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two waiting patients' pages come from one render; each page is byte for byte what a
    whole render of it makes (its label, place, wait and socket path, a hostile queue name
    escaped);
    a called ticket's page is another frame."""
    renders: list[str] = []
    html = render._html

    def counted(request: Any, template: str, *args: Any) -> str:
        renders.append(template)
        return html(request, template, *args)

    hostile = '<img src=x onerror=alert(1)>"'
    await engine.create_queue("aiims", "skin", hostile, "S")  # a queue name is shown on the page
    tickets = [await engine.issue("skin", name="Asha"), await engine.issue("skin", name="Ravi")]
    async with httpx.AsyncClient(base_url=hospital.url) as client:
        with monkeypatch.context() as unframed:
            unframed.setattr(page_memo, "frame", lambda *a: None)  # no frame: every page rendered whole
            page_memo.PAGES._pages.clear()
            whole = [(await client.get(f"/t/{t['token']}")).text for t in tickets]
        monkeypatch.setattr(render, "_html", counted)
        page_memo.PAGES._pages.clear()
        shared = [(await client.get(f"/t/{t['token']}")).text for t in tickets]
        assert renders == ["ticket.html"]
        await engine.next("skin", "2")
        called = (await client.get(f"/t/{tickets[0]['token']}")).text
        assert renders == ["ticket.html"] * 2
    assert shared == whole and shared[0] != shared[1]
    for page, ticket, position in zip(shared, tickets, (1, 2)):
        data = json.loads(page.split('id="qt-data">', 1)[1].split("</script>", 1)[0])
        assert data["ticket"]["label"] == ticket["label"] and data["ticket"]["position"] == position
        assert data["ws_path"] == f"/ws/t/{ticket['token']}"
        assert f'<h1 id="p-label" class="p-label">{ticket["label"]}</h1>' in page
        assert f'<dd id="p-position">{position}</dd>' in page
        assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;&#34;" in page
        assert data["ticket"]["queue"]["name"] == hostile
    assert 'data-status="called"' in called and tickets[0]["label"] in called


@pytest.mark.browser
@pytest.mark.slow
def test_the_console_page_follows_the_queue_its_desk_works_on(browser: BrowserContext,  # noqa: F811
                                                              frontdesk_site: FrontdeskSite) -> None:  # noqa: F811
    """In Chromium: the console's socket names its chosen queue; picking another opens it again
    for that queue, whose list then stays live."""
    site = frontdesk_site
    site.reset()
    site.issue("gp", "Asha Rao")
    sign_in(browser, site, "desk")
    w = open_page(browser, f"{site.url}/reception?queue=gp&counter=3", 1366, 768)
    page = w.page
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.wait_for_function("() => document.querySelectorAll('#r-waiting tr').length === 1")
    page.select_option("#r-queue", "eye")
    page.wait_for_function("() => document.querySelectorAll('#r-waiting tr').length === 0")
    eye = site.issue("eye", "Bala K")
    page.wait_for_function("() => document.querySelectorAll('#r-waiting tr').length === 1")
    assert eye["label"] in (page.text_content("#r-waiting tr") or "")
    assert [url.split("?", 1)[1] for url in sockets][-1] == "queues=eye"  # (the first, for gp, may be seen too)
    assert set(url.split("?", 1)[1] for url in sockets) <= {"queues=gp", "queues=eye"}
    assert page.evaluate("() => document.body.dataset.socket") == "open"
    w.assert_clean()
    page.close()


def test_the_page_memo_is_bounded_and_takes_only_plain_values() -> None:
    """Least recently used out first, never more than its size (random query strings cannot
    grow it); inputs that are not JSON values are refused, never shared by their repr."""
    memo = PageMemo(size=2)
    made: list[str] = []

    def render(text: str) -> Callable[[], str]:
        return lambda: made.append(text) or text

    assert memo.html(["a"], render("A")) == "A" and memo.html(["b"], render("B")) == "B"
    assert memo.html(["a"], render("A2")) == "A"  # kept, and now the most recent
    memo.html(["c"], render("C"))  # pushes out b, the least recently used
    assert len(memo) == 2 and made == ["A", "B", "C"]
    assert memo.html(["b"], render("B2")) == "B2" and memo.html(["a"], render("A3")) == "A3"
    with pytest.raises(TypeError):
        memo.html([object()], render("X"))


render_json = render._json_block


def test_a_frame_puts_each_request_s_texts_in_place_escaped_for_where_they_go() -> None:
    """Texts are HTML-escaped in text and attributes, data entries become JSON that cannot
    close the script block; a marker that comes out altered (a filter on a fill) or a stray
    marker in a shared value makes no frame: that page is rendered whole."""
    def shell(marked: dict[str, Any], marked_data: dict[str, Any]) -> str:
        return (f'<title>{marked["label"]}</title><p title="{marked["label"]}">{marked["where"]}</p>'
                f'<script type="application/json">{render_json({"t": 1, **marked_data})}</script>')

    parts = page_memo.frame(shell, ["label", "where"], ["ticket"], render_json)
    assert parts is not None and len(parts) == 2 * 4 + 1  # three texts and one data entry
    hostile = '"><script>alert(1)</script>'
    html = page_memo.fill(parts, {"label": "A-1", "where": hostile}, {"ticket": {"name": "</script><b>"}},
                          render_json)
    assert html == ('<title>A-1</title><p title="A-1">&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</p>'
                    '<script type="application/json">{"t":1,"ticket":{"name":"\\u003c/script\\u003e\\u003cb\\u003e"}}'
                    '</script>')
    assert page_memo.frame(lambda m, d: f"<p>{str(m['label']).upper()}</p>", ["label"], [], render_json) is None
    assert page_memo.frame(lambda m, d: f"<p>{m['label']}</p>\x00elsewhere\x00", ["label"], [], render_json) is None
