"""The pure parts of notices: templates, channel URLs, trigger rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qtraq_live.config import Settings
from qtraq_live.errors import ConfigError
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.realtime.mirror import Mirror
from qtraq_live.record.breach_report import CATEGORIES, MEASURES
from qtraq_live.runtime import server
from qtraq_live.workers import channels
from qtraq_live.workers.ledger import hint, retry_intervals
from qtraq_live.workers.render import KINDS, LANGS, MULTI_SEGMENT, render
from qtraq_live.workers.triggers import ahead_triggers, pause_triggers, status_triggers

CONTEXT = {"clinic": "City Clinic", "queue": "Dr Rao", "label": "A-012", "ahead": 3, "eta_min": 25,
           "track_url": "https://q.example.in/t/" + "x" * 32, "counter": "2", "name": "Asha", "code": "482913",
           "minutes": 10, "date": "2026-11-25", "slot": "10:30", "places": 3,
           "subject": "Clinic closed on Sunday", "text": "Closed on Sunday 29 November.",
           "device": "Chrome on Android", "at": "2026-11-25 10:30", "contact": "mobile",
           # a breach notice (breach_report.py) with every category and measure it can name
           "fiduciary": "City Clinic", "start": "2027-05-13 08:00", "end": "2027-05-14 10:00", "nature": "access",
           "categories": list(CATEGORIES), "measures": list(MEASURES), "grievance": "grievance@clinic.example"}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_in_every_language_within_one_sms(kind: str, lang: str) -> None:
    subject, body = render(kind, lang, CONTEXT)
    assert subject and body and "\n" not in body
    limit = 160 if lang == "en" else 70  # GSM-7 segment; UCS-2 (Devanagari) segment
    if kind != "issued" and kind not in MULTI_SEGMENT and lang == "en" or kind in ("ahead", "called", "verify_code"):
        assert len(body) <= limit, body  # the link in "issued" may take a second segment


def test_to_is_url_encoded_and_bad_urls_name_their_key(settings: Settings) -> None:
    assert channels.fill("json://gw/send?:to={to}", "+919812345678") == "json://gw/send?:to=%2B919812345678"
    assert channels.fill("mailto://smtp.example.com?to={to}", "a+b@x.in") == "mailto://smtp.example.com?to=a%2Bb%40x.in"
    assert channels.fill("json://gw/fixed", "+91") == "json://gw/fixed"
    good = settings.replace(notify__sms="json://gw.local/send?:to={to}", notify__email="mailtos://u:p@smtp.example.com?to={to}")
    assert set(channels.configured(good)) == {"sms", "email"}
    for bad in ("gateway.local/send", "nosuchscheme://x/{to}", "json:/x"):
        with pytest.raises(ConfigError, match="'notify.sms'.*not a valid Apprise URL"):
            channels.configured(settings.replace(notify__sms=bad))


def test_serve_refuses_to_start_with_an_invalid_channel_url(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="notify.whatsapp"):
        server.serve(settings.replace(notify__whatsapp="whatsapp-without-scheme"))


def test_override_and_masking_and_backoff(settings: Settings) -> None:
    assert channels.effective({"sms": "a", "email": "b"}, {"sms": "c", "whatsapp": "d"}) == \
        {"sms": "c", "email": "b", "whatsapp": "d"}
    assert hint("+919812345678") == "+91***78" and hint("asha@example.com") == "a***@example.com"
    delays = retry_intervals(settings.replace(notify__retry_base_ms=1000, notify__max_attempts=5))
    assert len(delays) == 4
    for i, d in enumerate(delays):
        assert 0.75 * 2**i <= d <= 1.25 * 2**i


async def test_trigger_rules(engine: QueueEngine) -> None:
    await engine.create_clinic("c1", "City Clinic")
    await engine.create_queue("c1", "gp", "Dr Rao", "A", notify_ahead=1)
    mirror = Mirror(await engine.clinic_state("c1"))
    told: set[int] = set()
    events = []
    for notify in (True, True, True, False):
        await engine.issue("gp", notify=notify)
    await engine.next("gp", counter="3")
    for ev in await engine.events_since("c1", mirror.version) or []:
        mirror.apply(ev)
        events.append((ev, status_triggers(ev, mirror), ahead_triggers(ev, mirror, told)))
    issued = [tr for _, st, _ in events for tr in st if tr.kind == "issued"]
    assert [tr.context["ahead"] for tr in issued] == [0, 1, 2]
    called_ev, called, ahead = events[-1]
    assert [(tr.kind, tr.context["counter"]) for tr in called] == [("called", "3")]
    assert [(tr.kind, tr.context["ahead"], tr.dedupe) for tr in ahead] == \
        [("ahead", 1, f"t{issued[2].ticket['id']}:ahead:gp")]
    assert called[0].dedupe == f"t{called[0].ticket['id']}:called:{called_ev['v']}"
    assert ahead_triggers(called_ev, mirror, set(), applied=False) == []  # a replay: places have moved on
    t3 = issued[2].ticket
    await engine.cancel_by_token(await engine.ticket_token(t3["id"]) or "")
    (ev,) = await engine.events_since("c1", mirror.version) or []
    mirror.apply(ev)
    assert status_triggers(ev, mirror) == []  # the patient cancelled: nothing to tell them
    assert [tr.ticket["id"] for tr in pause_triggers(mirror, "gp", 99)] == [issued[1].ticket["id"]]


def test_every_channel_example_in_the_docs_is_a_valid_apprise_url() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "notifications.md").read_text()
    examples = re.findall(r'^(email|sms|whatsapp) = "([^"]+)"', doc, flags=re.M)
    assert len(examples) >= 10
    for channel, url in examples:
        channels.check_url(f"notify.{channel}", channel, url)
