"""TRAI DLT: a template id per notice kind checked at start, texts that fit their registered
templates, and the sender and template id handed to the SMS provider by a real worker."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from qtraq_live.config import Settings, load_settings
from qtraq_live.errors import ConfigError
from qtraq_live.runtime import server
from qtraq_live.workers import channels, dlt, ledger
from qtraq_live.workers.ledger import Notice
from qtraq_live.workers.render import KINDS, LANGS, render
from tests.support_notify import NotifyEnv, Sink, Workers, notify_env, sink, smtp, wait_until, workers  # noqa: F401
from tests.support_serve import clean_env
from tests.test_notify_units import CONTEXT

DOCS = Path(__file__).resolve().parent.parent / "docs" / "notifications.md"
IDS = {kind: f"11071612345{i:04d}" for i, kind in enumerate(sorted(KINDS))}


def dlt_settings(settings: Settings, templates: dict[str, str]) -> Settings:
    return settings.replace(notify__dlt__enabled=True, notify__dlt__sender="QTRAQC", notify__dlt__templates=templates)


def test_a_kind_without_a_template_stops_serve_naming_it(settings: Settings) -> None:
    missing = {k: v for k, v in IDS.items() if k != "called"}
    with pytest.raises(ConfigError, match=r"notify\.dlt\.templates\.called"):
        server.serve(dlt_settings(settings, missing))
    with pytest.raises(ConfigError, match=r"notify\.dlt\.sender"):
        dlt.check(dlt_settings(settings, IDS).replace(notify__dlt__sender=""))
    with pytest.raises(ConfigError, match=r"notify\.dlt\.templates\.calld"):
        dlt.check(dlt_settings(settings, {**IDS, "calld": "1107000000000"}))
    with pytest.raises(ConfigError, match=r"notify\.dlt\.templates\.called_hi"):
        dlt.check(dlt_settings(settings, {**IDS, "called_hi": "not-a-number"}))
    dlt.check(dlt_settings(settings, {**IDS, "called_hi": "1107000000001"}))  # complete: no error


def test_the_command_line_names_the_missing_template(tmp_path: Path) -> None:
    lines = [f'{k} = "{v}"' for k, v in IDS.items() if k != "reply_help"]
    (tmp_path / "qtraq.toml").write_text('[notify.dlt]\nenabled = true\nsender = "QTRAQC"\n\n'
                                         '[notify.dlt.templates]\n' + "\n".join(lines) + "\n")
    env = clean_env(tmp_path / "data", QTRAQ_CONFIG=str(tmp_path / "qtraq.toml"))
    done = subprocess.run(["qtraq-live", "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "notify.dlt.templates.reply_help" in done.stdout + done.stderr
    assert not (tmp_path / "data" / "serve.json").exists()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_text_fits_its_registered_template(kind: str, lang: str) -> None:
    registered = dlt.registered_text(kind, lang)
    assert "{{" not in registered and "{%" not in registered
    assert registered.replace(dlt.VAR, "").strip(" :,.।()!")  # some fixed text around the variables
    for context in (CONTEXT, {**CONTEXT, "slot": "", "name": ""}):
        _, body = render(kind, lang, context)
        assert dlt.matches(registered, body), (registered, body)
    spam = " Reply WIN to claim a free phone from spam.example today"  # longer than any variable
    assert not dlt.matches(registered, render(kind, lang, CONTEXT)[1] + spam)


def test_docs_list_every_text_to_register() -> None:
    assert dlt.listing() in DOCS.read_text(), "docs/notifications.md: python -m qtraq_live.workers.dlt"


@pytest.fixture
def rq_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def test_worker_sends_sender_and_template_id_with_a_registered_text(
        rq_conn: redis.Redis, notify_env: NotifyEnv, sink: Sink, workers: Workers) -> None:
    ids = {**IDS, "ahead_hi": "1107161234569999"}  # "ahead" is registered in Hindi too; "called" only in English
    notify_env.config_path.write_text(
        f'[notify]\nsms = {json.dumps(sink.url())}\nmax_attempts = 2\n\n[notify.dlt]\nenabled = true\n'
        'sender = "QTRAQC"\n\n[notify.dlt.templates]\n' + "\n".join(f'{k} = "{v}"' for k, v in ids.items()) + "\n")
    notify_env.settings = load_settings(notify_env.env)
    context = {"clinic": "Sunrise", "queue": "General", "label": "A-007", "ahead": 2, "counter": "3"}
    for i, (kind, lang) in enumerate((("ahead", "hi"), ("called", "hi"))):
        ledger.create(rq_conn, Notice(key=f"t{i}:{kind}:1:sms", kind=kind, channel="sms", to=f"+91981234000{i}",
                                      lang=lang, context=context, queue="notify-high", subject=f"ticket:{i}"),
                      notify_env.settings)
    workers.start(1)
    (ahead,) = wait_until(lambda: sink.to("+919812340000"), "the ahead SMS")
    assert ahead["sender"] == "QTRAQC" and ahead["template_id"] == "1107161234569999"
    assert dlt.matches(dlt.registered_text("ahead", "hi"), ahead["message"]) and "आपसे आगे 2 लोग" in ahead["message"]
    (called,) = wait_until(lambda: sink.to("+919812340001"), "the called SMS")
    assert called["template_id"] == IDS["called"]  # no Hindi text registered: sent in English
    assert called["message"] == "Sunrise: A-007, please come to General, counter 3 now."


def test_a_url_may_place_the_dlt_ids_itself(settings: Settings) -> None:
    url = "msg91://{dlt_template}@1234567890abcdef12345678/{to}"
    dlt.check(dlt_settings(settings, IDS))
    on = dlt_settings(settings, IDS).replace(notify__sms=url)
    assert channels.configured(on) == {"sms": url}  # accepted at start
    sent = dlt.apply(channels.fill(url, "+919812345678"), on, "called", "en")
    assert sent == f"msg91://{IDS['called']}@1234567890abcdef12345678/%2B919812345678"
    assert dlt.apply("json://gw/send?:to=x", on, "called", "en") == \
        f"json://gw/send?:to=x&:sender=QTRAQC&:template_id={IDS['called']}"
    assert dlt.apply("json://gw/send", settings, "called", "en") == "json://gw/send"  # DLT off: unchanged
