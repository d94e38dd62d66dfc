"""Spoken calls: espeak-ng clips in every supported language (checked with sox), the audio
endpoint and the clinic field ``languages`` on a running server, and the TV in Chromium saying
queued calls one after another, in the clinic's languages, never two at once."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from qtraq_live.record import access
from qtraq_live.speech import clips
from qtraq_live.speech.phrases import PHRASES, SUPPORTED, call_text, spoken_token
from tests.support_browser import ARGS, CHROMIUM, TIMEOUT_MS, open_page
from tests.support_http import LiveServer, app_server, error_of  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("soxi") is None,
                                reason="espeak-ng and sox are installed by scripts/test")


def soxi(path: Path, flag: str) -> str:
    return subprocess.run(["soxi", flag, str(path)], capture_output=True, text=True, check=True).stdout.strip()


def check_clip(path: Path) -> float:
    """A valid mono WAV of a sensible length for one call; returns its seconds."""
    assert soxi(path, "-t") == "wav" and soxi(path, "-c") == "1" and int(soxi(path, "-r")) >= 16000
    seconds = float(soxi(path, "-D"))
    assert 1.5 <= seconds <= 12.0, (path, seconds)
    return seconds


def test_every_language_has_its_sentence_and_voice() -> None:
    assert spoken_token("A-012") == "A 12" and spoken_token("LAB-105") == "LAB 105"
    assert call_text("en", "A-012", "3") == "Token A 12, please go to counter 3."
    assert call_text("en", "B-007", "Room 2") == "Token B 7, please go to Room 2."
    assert call_text("hi", "A-012", "3") == "टोकन A 12, कृपया काउंटर 3 पर जाइए।"
    assert set(SUPPORTED) == {"en", "hi", "bn", "ta", "te", "mr", "gu", "kn", "ml", "pa", "or", "as", "ur"}
    voices = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    for lang, (voice, sentence, _) in PHRASES.items():
        assert "{token}" in sentence and "{where}" in sentence
        assert f" {voice} " in voices, f"espeak-ng has no voice {voice} for {lang}"


@pytest.mark.parametrize("lang", SUPPORTED)
def test_a_clip_in_every_language_is_valid_audio_and_cached(lang: str, tmp_path: Path) -> None:
    text = call_text(lang, "A-012", "3")
    path = asyncio.run(clips.clip(tmp_path, lang, text))
    check_clip(path)
    stamp = path.stat().st_mtime_ns
    assert asyncio.run(clips.clip(tmp_path, lang, text)) == path and path.stat().st_mtime_ns == stamp  # cached
    longer = asyncio.run(clips.clip(tmp_path, lang, call_text(lang, "A-112", "Room 12")))
    assert longer != path and check_clip(longer) > 0


def test_a_counter_name_cannot_inject_into_the_synthesiser(tmp_path: Path) -> None:
    """Counters are staff text up to 32 characters: read as plain text on stdin, no SSML, no shell."""
    for tricky in ('<audio src="/etc/passwd"/>$(id)', "-w /tmp/owned.wav --stdout", "<speak><break time='9s'/>"):
        check_clip(asyncio.run(clips.clip(tmp_path, "en", call_text("en", "A-001", tricky))))
    assert not Path("/tmp/owned.wav").exists()


# -- the endpoints on a running server ---------------------------------------------------------


@pytest.fixture
def tv(app_server: LiveServer) -> tuple[LiveServer, str]:
    """A clinic ``c1`` with queue ``gp`` and a display key for it."""
    app_server.clinic("c1", ("gp",))
    key = app_server.run(access.create_display_key(app_server.app.state.store, app_server.app.state.redis, "c1"))
    return app_server, key


def call(server: LiveServer, counter: str = "3") -> int:
    """Issue a ticket and call it: the version of that call."""
    async def go() -> int:
        await server.engine.issue("gp")
        await server.engine.next("gp", counter)
        return await server.engine.version("c1")
    return server.run(go())


def test_audio_endpoint_says_the_call_in_the_language_asked(tv: tuple[LiveServer, str], tmp_path: Path) -> None:
    server, key = tv
    version = call(server)
    url = server.api(f"/clinics/c1/calls/{version}/audio")
    for lang in ("en", "ta"):
        r = httpx.get(url, params={"lang": lang, "key": key})
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        assert "max-age" in r.headers["cache-control"]
        (tmp_path / f"{lang}.wav").write_bytes(r.content)
        check_clip(tmp_path / f"{lang}.wav")
    assert error_of(httpx.get(url, params={"lang": "en", "key": "x" * 32})) == (401, "bad_display_key")
    assert error_of(httpx.get(url, params={"lang": "en"})) == (401, "bad_display_key")
    assert error_of(httpx.get(url, params={"lang": "fr", "key": key})) == (422, "invalid_field")
    not_a_call = server.api(f"/clinics/c1/calls/{version - 1}/audio")  # the ticket's issue
    assert error_of(httpx.get(not_a_call, params={"lang": "en", "key": key})) == (404, "not_found")
    assert error_of(httpx.get(server.api("/clinics/c1/calls/999999/audio"), params={"lang": "en", "key": key}))[0] == 404
    assert httpx.get(server.api("/clinics/c1/speech"), params={"key": key}).json() == {"languages": ["en", "hi"]}


def test_clinic_field_languages(tv: tuple[LiveServer, str]) -> None:
    server, key = tv
    admin = server.staff("admin")
    assert admin.get("/clinics/c1").json()["languages"] == ["en", "hi"]
    r = admin.patch("/clinics/c1", json={"languages": ["ta", "en"]})
    assert r.status_code == 200 and r.json()["languages"] == ["ta", "en"] and r.json()["name"] == "Clinic c1"
    assert admin.get("/clinics/c1").json()["languages"] == ["ta", "en"]
    assert httpx.get(server.api("/clinics/c1/speech"), params={"key": key}).json() == {"languages": ["ta", "en"]}
    assert error_of(admin.patch("/clinics/c1", json={"languages": ["ta", "ta"]})) == (422, "invalid_field")
    assert error_of(admin.patch("/clinics/c1", json={"languages": ["xx"]}))[0] == 422
    assert error_of(admin.patch("/clinics/c1", json={"languages": []}))[0] == 422
    assert error_of(server.staff("reception").patch("/clinics/c1", json={"languages": ["en"]}))[0] == 403
    r = admin.post("/clinics", json={"id": "c2", "name": "Two", "languages": ["bn"]})
    assert r.status_code == 201 and r.json()["languages"] == ["bn"]
    stored = server.db().execute("SELECT languages FROM clinic_languages WHERE clinic_id = 'c2'").fetchone()[0]
    assert stored == '["bn"]'


# -- the TV in Chromium ------------------------------------------------------------------------


@pytest.fixture
def autoplay_browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium as a kiosk TV runs it: sound may start without a click."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, headless=True,
            args=[*ARGS, "--autoplay-policy=no-user-gesture-required"])
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def test_tv_says_queued_calls_in_order_in_each_language_never_overlapping(
        tv: tuple[LiveServer, str], autoplay_browser: BrowserContext) -> None:
    server, key = tv
    page = open_page(autoplay_browser, f"{server.url}/display/c1?key={key}", 1920, 1080)
    page.page.wait_for_function("() => document.body.dataset.socket === 'open'")
    page.page.wait_for_function("() => window.QTSpeech !== undefined")
    for counter in ("1", "2", "3"):  # three presses at once: three calls in line
        call(server, counter)
    page.page.wait_for_function("() => window.QTSpeech.log.length >= 6", timeout=120_000)
    log: list[dict[str, Any]] = page.page.evaluate("() => window.QTSpeech.log")
    assert [(e["label"], e["lang"]) for e in log] == [
        ("A-001", "en"), ("A-001", "hi"), ("A-002", "en"), ("A-002", "hi"), ("A-003", "en"), ("A-003", "hi")]
    assert all(e["how"] == "clip" for e in log), log  # the server's audio, not a fallback
    for before, after in zip(log, log[1:]):
        assert after["start"] >= before["end"], (before, after)  # one at a time
    for e in log:
        assert e["end"] - e["start"] >= 1000  # the clip really played its length
    # A recall is said again.
    async def recall() -> None:
        ticket = (await server.engine.queue_snapshot("gp"))["now_serving"][-1]
        await server.engine.recall(ticket["id"])
    server.run(recall())
    page.page.wait_for_function("() => window.QTSpeech.log.length >= 8", timeout=60_000)
    again = page.page.evaluate("() => window.QTSpeech.log.slice(6)")
    assert [(e["label"], e["lang"]) for e in again] == [("A-003", "en"), ("A-003", "hi")]
    page.assert_clean()


@pytest.mark.parametrize("lang", [lang for lang in SUPPORTED if lang != "en"])
def test_numbers_are_said_the_way_each_language_says_them(lang: str) -> None:
    """espeak-ng reads the label's digits in the voice's language: "12" is never "twelve"."""
    english = subprocess.run(["espeak-ng", "-v", PHRASES["en"][0], "-x", "-q", "12"],
                             capture_output=True, text=True, check=True).stdout.strip()
    own = subprocess.run(["espeak-ng", "-v", PHRASES[lang][0], "-x", "-q", "12"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert own and own != english and "tw" not in own, (lang, own)
