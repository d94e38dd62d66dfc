"""The languages, without a server: one language list, a complete catalogue in every
language (no key missing, none unused), plural forms that agree between gettext, Babel's
CLDR rules and the browser, Accept-Language with q-values, and notices in every language."""

from __future__ import annotations

import gettext
import io
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path

import jinja2
import pytest
from babel.messages.pofile import PoFileError
from jinja2 import meta

import qtraq_live
from qtraq_live import config, languages
from qtraq_live.accounts import records
from qtraq_live.api import clinics, issue
from qtraq_live.config import Settings
from qtraq_live.display import i18n, render, script_strings
from qtraq_live.errors import Invalid
from qtraq_live.languages import DEFAULT_LANG, LANGS, STAFF_LANGS, plural_index
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.web.app import create_app
from qtraq_live.workers import render as notices
from qtraq_live.workers.render import KINDS

PKG = Path(qtraq_live.__file__).parent
DISPLAY = PKG / "display"
NOTICES = PKG / "workers" / "templates" / "notices"
# The staff pages (rendered in STAFF_LANGS only) and the modules that draw only for them. The
# partials and scripts that only these pages pull in are staff files too (see _staff_files).
STAFF_PAGES = {"admin.html", "reception.html", "api_docs.html"}
STAFF_MODULES = {"charts.py"}
PLACEHOLDER = re.compile(r"{(\w+)}")


def _keys() -> set[str]:
    return set(i18n.catalogue(DEFAULT_LANG))


def _usage() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(literal keys, dynamic key prefixes)``, each mapped to the files that use them.

    Templates call ``t("join.title")`` or ``t("lang." ~ code)``; scripts ``QT.t("minutes")``
    (a ``js.`` key), ``QT.t(ok ? "saved" : "failed")``, ``QT.t("status_" + s)`` or
    ``word("portal_gender_", …)``; Python code names keys as string literals
    (``error_page(…, "error.no_ticket")``), ``"source." + x`` or f-strings
    (``f"reply.words_{intent}"``). Any quoted key counts as used where it is quoted.
    """
    literal: dict[str, set[str]] = defaultdict(set)
    dynamic: dict[str, set[str]] = defaultdict(set)
    keys = _keys()
    js_keys = {k[3:] for k in keys if k.startswith("js.")}
    for path in sorted((DISPLAY / "templates").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        for key in re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.]+)["']\s*[,)]""", text):
            literal[key].add(path.name)  # asked for, so it must exist
        for key in re.findall(r"""["']([a-z_]+\.[a-z0-9_.]+)["']""", text):
            if key in keys:
                literal[key].add(path.name)
        for prefix in re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.]*)["']\s*~""", text):
            dynamic[prefix].add(path.name)
    for path in sorted((DISPLAY / "static").glob("*.js")):
        text = path.read_text(encoding="utf-8")
        for key in re.findall(r"""(?:\bQT\.t|\bt)\(\s*"([a-z0-9_]+)"\s*[,)]""", text):
            literal["js." + key].add(path.name)
        for key in re.findall(r'"([a-z0-9_]+)"', text):
            if key in js_keys:
                literal["js." + key].add(path.name)
        for found in re.findall(r""""([a-z0-9_]+_)"\s*\+|\bword\(\s*"([a-z0-9_]+)\"""", text):
            prefix = "js." + "".join(found)  # QT.t("status_" + s), var key = "abdm_gender_" + code
            if any(key.startswith(prefix) for key in keys):
                dynamic[prefix].add(path.name)
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for key in re.findall(r"""["']([a-z_]+\.[a-z0-9_.]+)["']""", text):
            if key in keys:
                literal[key].add(path.name)
        for found in re.findall(r"""\bf["']([a-z_]+\.[a-z0-9_]*)\{|["']([a-z_]+\.[a-z0-9_]*)["']\s*\+""", text):
            prefix = "".join(found)
            if any(key.startswith(prefix) for key in keys):  # f"notify.{name}" is a setting, not a key
                dynamic[prefix].add(path.name)
    return literal, dynamic


def _staff_files() -> set[str]:
    """Staff pages, plus every partial (``{% include %}``) and script (``<script src>``) that
    only staff pages pull in, so a new staff panel in its own file needs no extra listing."""
    pulled_in_by: dict[str, set[str]] = defaultdict(set)
    for path in (DISPLAY / "templates").glob("*.html"):
        text = path.read_text(encoding="utf-8")
        for used in re.findall(r"""{%-?\s*include\s+["']([^"']+)["']""", text) + \
                re.findall(r'src="/static/([\w.-]+\.js)"', text):
            pulled_in_by[used].add(path.name)
    staff = set(STAFF_PAGES)
    grew = True
    while grew:
        grew = False
        for used, users in pulled_in_by.items():
            if used not in staff and users <= staff:
                staff.add(used)
                grew = True
    return staff | STAFF_MODULES


def _users() -> dict[str, set[str]]:
    """Every catalogue key with the files that use it (empty: unused)."""
    literal, dynamic = _usage()
    users: dict[str, set[str]] = {key: set(literal.get(key, ())) for key in _keys()}
    for prefix, files in dynamic.items():
        for key in users:
            if key.startswith(prefix):
                users[key] |= files
    return users


def test_one_language_list_feeds_every_place_that_names_languages() -> None:
    assert LANGS == ("en", "hi", "ta", "te", "bn", "mr") and LANGS[0] == DEFAULT_LANG
    assert set(STAFF_LANGS) <= set(LANGS) and STAFF_LANGS[:2] == ("en", "hi")
    assert i18n.LANGS is LANGS and notices.LANGS is LANGS
    assert issue.CONTACT_FIELDS["lang"].enum == LANGS
    assert clinics.LANG.enum == LANGS
    assert records.REGISTER.fields["lang"].enum == LANGS and records.ACCOUNT_PATCH.fields["lang"].enum == LANGS
    setting = next(s for s in config.SETTINGS if s.key == "notify.default_lang")
    assert setting.parse("mr") == "mr" and all(lang in setting.help for lang in LANGS)
    with pytest.raises(ValueError):
        setting.parse("fr")
    po = {p.stem for p in (DISPLAY / "i18n").glob("*.po")}
    assert po == set(LANGS) - {DEFAULT_LANG}, "one .po per language, none for a language not offered"
    assert {p.name for p in NOTICES.iterdir()} == set(LANGS)
    assert set(languages.LOCALE_TAGS) == set(LANGS)


def test_no_key_is_missing_or_unused_in_any_language() -> None:
    users = _users()
    unused = sorted(k for k, files in users.items() if not files)
    assert not unused, f"keys no page, script or module asks for: {unused}"
    literal, dynamic = _usage()
    unknown = sorted(k for k in literal if k not in _keys())
    assert not unknown, f"keys asked for but not in messages.pot: {unknown}"
    for prefix in dynamic:
        assert len([k for k in _keys() if k.startswith(prefix)]) >= 2, prefix
    staff_files = _staff_files()
    assert {"_login.html", "_staff_header.html", "admin.js", "reception.js"} <= staff_files
    assert not {"base.html", "common.js", "ticket.js", "display.js", "account.js"} & staff_files
    patient = {k for k, files in users.items() if files - staff_files}
    for lang in LANGS:
        have = set(i18n.catalogue(lang))
        need = _keys() if lang in STAFF_LANGS else patient
        missing = sorted(need - have)
        assert not missing, f"{lang}: no translation (or only a fuzzy one) for {missing}"


def _script_usage() -> dict[str, set[str]]:
    """Every script with the ``js.`` keys (without the prefix) it uses, by this test's own
    reading of its call sites (``_usage``): a literal key, or every key under a prefix."""
    literal, dynamic = _usage()
    used: dict[str, set[str]] = defaultdict(set)
    for key in _keys():
        for files in [literal.get(key, set())] + [f for p, f in dynamic.items() if key.startswith(p)]:
            for name in files:
                if name.endswith(".js") and key.startswith(i18n.JS_PREFIX):
                    used[name].add(key[len(i18n.JS_PREFIX):])
    return used


def _template_text(name: str) -> str:
    """A template with the templates it extends or includes."""
    text = (DISPLAY / "templates" / name).read_text(encoding="utf-8")
    others = re.findall(r"""{%-?\s*(?:extends|include)\s+["']([^"']+)["']""", text)
    return "\n".join([text, *(_template_text(other) for other in others)])


def _template_scripts(name: str) -> set[str]:
    """The scripts a template loads, with those of the templates it extends or includes."""
    return set(re.findall(r'src="/static/([\w.-]+\.js)"', _template_text(name)))


def test_every_key_a_script_calls_is_one_its_reading_sees() -> None:
    """Each ``QT.t(…)`` call names its key by a literal, a prefix literal (``"status_" + s``),
    or a name given such a literal in the same file (``var key = "abdm_gender_" + code``,
    ``word("portal_gender_", …)`` into ``function word(prefix, code)``): a key built any other
    way would be shipped to no page."""
    unreadable = []
    for path in sorted((DISPLAY / "static").glob("*.js")):
        text = path.read_text(encoding="utf-8")
        for arg in re.findall(r"""(?<!function )\b(?:QT\.)?t\(\s*([^,)]+)""", text):
            arg = arg.strip()
            choices = arg.split("?", 1)[1].split(":") if "?" in arg else [arg]
            if all(c.strip().startswith('"') for c in choices):
                continue  # "minutes", "status_" + s, ok ? "saved" : "failed"
            name = re.match(r"\w+", arg)
            assigned = name and re.search(rf'\b{name.group(0)} = "[a-z0-9_]+_" \+', text)
            parameter = name and re.search(rf"function (\w+)\({name.group(0)}\b", text)
            fed = parameter and all(re.match(r'\s*"[a-z0-9_]+_"', call)
                                    for call in re.findall(rf"\b{parameter.group(1)}\(([^)]*)\)", text)
                                    if not call.startswith(name.group(0)))
            if not (assigned or fed):
                unreadable.append(f"{path.name}: t({arg})")
    assert not unreadable, unreadable


def test_each_page_ships_the_strings_its_scripts_use_and_no_other_pages() -> None:
    """What a page carries (``script_strings.page_keys``) against this test's reading: every key
    each of its scripts uses, and no key that only scripts it does not load use. A form field's
    own error sentence (``common.js``: ``"err_field_" + err.field``) only where the page has a
    control of that name: ``QT.errorText`` falls back to the code's sentence elsewhere."""
    used = _script_usage()
    field = script_strings.FIELD_ERROR_PREFIX
    assert f'strings["{field}" + err.field]' in (DISPLAY / "static" / "common.js").read_text(encoding="utf-8")
    assert {"ticket.js", "common.js", "reception.js", "account.js"} <= set(used)
    pages = [p.name for p in (DISPLAY / "templates").glob("*.html") if _template_scripts(p.name)]
    assert {"ticket.html", "display.html", "admin.html", "print.html", "error.html"} <= set(pages)
    for page in pages:
        scripts = _template_scripts(page)
        assert set(script_strings.page_scripts(render._env, page)) == scripts, page
        shipped = script_strings.page_keys(render._env, page)
        controls = set(re.findall(r'<(?:input|select|textarea)[^>]*\sname="(\w+)"', _template_text(page)))
        needed = {k for k in set().union(*(used[s] for s in scripts))
                  if not k.startswith(field) or k.removeprefix(field) in controls}
        missing = sorted(needed - shipped)
        assert not missing, f"{page} loads scripts that use {missing} but does not ship them"
        others = set().union(*(keys for s, keys in used.items() if s not in scripts)) - needed
        others |= {k for k in used["common.js"] if k.startswith(field)} - needed
        assert not shipped & others, f"{page} ships strings only other pages use: {sorted(shipped & others)}"
    ticket = script_strings.page_keys(render._env, "ticket.html")
    assert "status_called" in ticket and "error_network" in ticket and "access_active" not in ticket
    assert not {k for k in ticket if k.startswith(field)}  # no field of the ticket page has a sentence
    assert {"err_field_mobile", "err_field_name"} <= script_strings.page_keys(render._env, "join.html")
    assert len(ticket) < len({k for k in _keys() if k.startswith(i18n.JS_PREFIX)}) / 2


def test_po_files_hold_exactly_the_keys_of_the_template() -> None:
    """An entry left in a .po after its key went from messages.pot is an unused key too."""
    keys = [m.context for m in i18n.po_file(DEFAULT_LANG) if m.id]
    assert len(keys) == len(set(keys)) and all(keys)
    for lang in LANGS[1:]:
        entries = [m for m in i18n.po_file(lang) if m.id]
        assert [m.context for m in entries] == keys, lang
        assert not i18n.po_file(lang).obsolete, lang


@pytest.mark.parametrize("lang", LANGS)
def test_every_translation_keeps_the_placeholders_and_plural_shape(lang: str) -> None:
    english = i18n.catalogue(DEFAULT_LANG)
    for key, text in i18n.catalogue(lang).items():
        source = english[key]
        assert isinstance(text, tuple) == isinstance(source, tuple), key
        forms = text if isinstance(text, tuple) else (text,)
        wanted = set(PLACEHOLDER.findall(source[-1] if isinstance(source, tuple) else source))
        for form in forms:
            assert form.strip() and set(PLACEHOLDER.findall(form)) == wanted, (lang, key, form)
        if isinstance(text, tuple):
            assert len(text) == 2, (lang, key)


@pytest.mark.parametrize("lang", LANGS[1:])
def test_plural_forms_header_agrees_with_the_cldr_rule_the_pages_use(lang: str) -> None:
    """gettext tools read the .po header; the server and Intl.PluralRules use CLDR: same answer."""
    header = i18n.plural_forms(lang)
    assert header.startswith("nplurals=2;"), header
    rule = gettext.c2py(header.split("plural=")[1].rstrip(";"))
    assert all(rule(n) == plural_index(lang, n) for n in range(0, 1001)), lang


def test_translator_picks_plural_forms_and_falls_back_to_english() -> None:
    en, ta, hi, mr = (i18n.translator(lang) for lang in ("en", "ta", "hi", "mr"))
    assert en("js.error_rate_limited", s=1).endswith("in 1 second.")
    assert en("js.error_rate_limited", s=30).endswith("in 30 seconds.")
    assert (ta("js.minutes", n=1), ta("js.minutes", n=5)) == ("1 நிமிடம்", "5 நிமிடங்கள்")
    assert (mr("js.minutes", n=1), mr("js.minutes", n=5)) == ("1 मिनिट", "5 मिनिटे")
    assert hi("js.minutes", n=3) == "3 मिनट"
    assert "{days}" not in en("privacy.keep_walkin", days=1) and "1 day after" in en("privacy.keep_walkin", days=1)
    # a staff-only string in a patient language falls back to English; an unknown key shows itself
    assert ta("reception.next") == en("reception.next") == "Next patient"
    assert ta("no.such_key") == "no.such_key"
    assert i18n.translator("xx")("ticket.title") == "Your ticket"
    strings = i18n.js_strings("te", frozenset({"minutes", "status_called", "access_active", "no_such_key"}))
    assert strings["minutes"] == ["{n} నిమిషం", "{n} నిమిషాలు"] and strings["status_called"] == "మీ వంతు వచ్చింది!"
    # only the keys asked for: a staff string falls back to English, an unknown key is left out
    assert strings["access_active"] == en("js.access_active") and set(strings) == {"minutes", "status_called",
                                                                                     "access_active"}


@pytest.mark.parametrize(("header", "wanted"), [
    ("ta-IN,ta;q=0.9,en-US;q=0.8,en;q=0.7", ["ta", "en"]),
    ("en;q=0.5, te;q=0.9, bn", ["bn", "te", "en"]),        # weights, not order
    ("hi;q=0, mr", ["mr"]),                                  # q=0: not acceptable
    ("BN-in;Q=0.7, *;q=0.5", ["bn"]),                        # case-insensitive, * dropped
    ("ta;q=abc, te;q=1.5, mr;q=0.3", ["mr"]),                # malformed weights dropped
    ("", []),
    (",,;q=1, ;", []),
])
def test_accept_language_is_read_with_its_q_values(header: str, wanted: list[str]) -> None:
    assert i18n.accepted_langs(header) == wanted


def test_language_choice_order() -> None:
    pick = i18n.pick_lang
    assert pick({"lang": "ta"}, {"qt_lang": "bn"}, "te", "hi") == "ta"
    assert pick({}, {"qt_lang": "bn"}, "te", "hi") == "bn"
    assert pick({"lang": "fr"}, {"qt_lang": "<script>"}, "te", "hi") == "hi"  # bad values ignored
    assert pick({}, {}, "fr, te;q=0.5, en;q=0.4") == "te"
    assert pick({}, {}, "en;q=0.2, mr;q=0.8") == "mr"
    assert pick({}, {}, "de, fr") == "en"
    # staff pages offer fewer languages: a Tamil choice falls through to English there
    assert pick({"lang": "ta"}, {}, "ta", allowed=STAFF_LANGS) == "en"
    assert pick({}, {"qt_lang": "ta"}, "ta, hi;q=0.5", allowed=STAFF_LANGS) == "hi"


def _variables(lang: str, kind: str) -> set[str]:
    env = notices.environment()
    source = (NOTICES / lang / f"{kind}.txt").read_text(encoding="utf-8")
    return set(meta.find_undeclared_variables(env.parse(source))) - {"plural"}


@pytest.mark.parametrize("lang", LANGS)
def test_every_notice_kind_is_written_in_every_language_with_the_same_facts(lang: str) -> None:
    files = {p.stem for p in (NOTICES / lang).glob("*.txt")}
    assert files == set(KINDS), f"{lang}: missing {sorted(set(KINDS) - files)}, unknown {sorted(files - set(KINDS))}"
    for kind in KINDS:
        gone = _variables(DEFAULT_LANG, kind) - _variables(lang, kind) - {"name", "queue"}
        assert not gone, f"{lang}/{kind}.txt leaves out {gone}"


def test_notices_pick_plural_forms_and_fall_back_to_english() -> None:
    context = {"clinic": "C", "queue": "Q", "label": "A-001", "ahead": 1, "eta_min": 1, "track_url": "u",
               "counter": "1", "name": "", "code": "1", "minutes": 1, "date": "2026-12-08", "slot": ""}
    assert "1 వ్యక్తి" in notices.render("ahead", "te", context)[1]
    assert "3 మంది" in notices.render("ahead", "te", {**context, "ahead": 3})[1]
    assert "1 मिनिट" in notices.render("issued", "mr", context)[1]
    assert "25 मिनिटे" in notices.render("issued", "mr", {**context, "eta_min": 25})[1]
    assert notices.render("ahead", "xx", context) == notices.render("ahead", "en", context)
    with pytest.raises(jinja2.TemplateNotFound):
        notices.render("no_such_kind", "ta", context)


def test_catalogue_files_ship_with_the_package() -> None:
    pyproject = (PKG.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"display/i18n/*.po"' in pyproject and '"display/i18n/*.pot"' in pyproject
    assert resources.files("qtraq_live.display").joinpath("i18n/messages.pot").is_file()


async def test_the_engine_refuses_a_language_it_cannot_speak(engine: QueueEngine) -> None:
    """Every way in (API, config seed, CLI) reaches these checks, so no clinic or ticket holds
    a language the pages and notices cannot speak."""
    with pytest.raises(Invalid, match="bn, mr"):
        await engine.create_clinic("paris", "Paris", lang="fr")
    await engine.create_clinic("kol", "Kolkata", lang="bn")
    with pytest.raises(Invalid):
        await engine.update_clinic("kol", lang="xx")
    assert (await engine.update_clinic("kol", lang="te"))["lang"] == "te"
    await engine.create_queue("kol", "opd", "OPD", "A")
    with pytest.raises(Invalid):
        await engine.issue("opd", lang="fr")
    ticket = await engine.issue("opd", lang="mr")
    assert (await engine.ticket(ticket["id"]))["lang"] == "mr"  # type: ignore[index]


def test_a_malformed_catalogue_stops_the_app_at_start(settings: Settings) -> None:
    """The app reads every file when it is created (with the strict reader below), so a
    malformed .po is a start-up error naming the line, never a patient's 500."""
    i18n.catalogue.cache_clear()
    create_app(settings)
    assert i18n.catalogue.cache_info().currsize == len(LANGS)
    with pytest.raises(PoFileError, match="misformatted"):
        i18n.read_catalogue(io.BytesIO(b'msgctxt "x"\nmsgid "a"\nmsgstr "b"\nthis is not gettext\n'), "ta")
