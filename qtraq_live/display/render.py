"""Rendering pages: one Jinja2 environment, the page security headers, the error page.

Every page gets a strict Content-Security-Policy: scripts only from ``/static`` (no inline
script, no inline handlers), so page data travels in a ``<script type="application/json">``
block that the browser never executes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..languages import LANG_COOKIE, LANG_COOKIE_MAX_AGE_S, LANGS, LOCALE_TAGS
from ..validation import EMAIL_MAX, NAME_MAX
from . import i18n, page_memo, script_strings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors {frame}"
)


def _headers(frameable: bool) -> dict[str, str]:
    """Only the printable ticket may be framed (the reception console prints it from a hidden frame)."""
    return {
        "Content-Security-Policy": CSP.format(frame="'self'" if frameable else "'none'"),
        "X-Frame-Options": "SAMEORIGIN" if frameable else "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("qtraq_live.display", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates are package files: no stat() of each one per render
)


def _json_block(data: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">`` (no ``</script>`` break-out)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_env.filters["json_block"] = _json_block
# the bounds the API checks, for the inputs' maxlength (a form never takes what the API refuses)
_env.globals.update(name_max=NAME_MAX, email_max=EMAIL_MAX)


def request_lang(request: Request, preferred: str | None = None, langs: Sequence[str] = LANGS) -> str:
    """The language of this page among ``langs`` (staff pages offer fewer, see languages.py)."""
    return i18n.pick_lang(request.query_params, request.cookies, request.headers.get("accept-language", ""),
                          preferred, langs)


def _remember_lang(request: Request, response: HTMLResponse) -> None:
    """A valid ``?lang=`` is kept in a cookie, so the next page (the ticket after the check-in
    form, a link without ``?lang=``) speaks it too. An unknown value is ignored, never stored."""
    chosen = request.query_params.get("lang")
    if chosen in LANGS:
        response.set_cookie(LANG_COOKIE, chosen, max_age=LANG_COOKIE_MAX_AGE_S, path="/", httponly=True,
                            samesite="lax",
                            secure=request.url.scheme == "https" or request.app.state.settings.production)


def page(request: Request, template: str, *, lang: str, status: int = 200, data: dict[str, Any] | None = None,
         frameable: bool = False, langs: Sequence[str] = LANGS, memo: bool = False,
         fills: dict[str, str] | None = None, data_fills: dict[str, Any] | None = None,
         **context: Any) -> HTMLResponse:
    """Render ``template`` in ``lang``; ``data`` goes to the page script via the JSON block, with
    the browser strings that the page's own scripts use; ``langs`` are the languages the page's language switch offers. ``memo``: ``data`` and the
    context are plain JSON values, and the text is shared by every request that gives the same
    ones (``page_memo``: an anonymous page is rendered once, not per request).

    ``fills`` and ``data_fills`` (with ``memo``) are what differs from one request to the next
    on a page that is otherwise shared, such as one patient's ticket: ``fills`` are texts the
    template prints as they are (``{{ name }}``: no filter, no test), ``data_fills`` entries of
    ``data``. The shared page is rendered once with a marker in each one's place, and each
    request puts its own values, escaped for where they go, into those places."""
    context.setdefault("walkin_days", request.app.state.settings["privacy.walkin_contact_days"])  # _walkin_notice.html
    fills, data_fills = fills or {}, data_fills or {}

    def render(texts: dict[str, Any], entries: dict[str, Any]) -> str:
        return _html(request, template, lang, {**(data or {}), **entries}, langs, {**context, **texts})

    if not memo:
        html = render(fills, data_fills)
    else:  # the text depends on these and on nothing else of the request (but the fills' values)
        inputs = (template, lang, list(langs), request.scope["query_string"].decode("latin-1"), data, context,
                  sorted(fills), sorted(data_fills))
        if fills or data_fills:
            html = _filled(inputs, render, fills, data_fills)
        else:
            html = page_memo.PAGES.html(inputs, lambda: render({}, {}))
    response = HTMLResponse(html, status_code=status, headers=_headers(frameable))
    _remember_lang(request, response)
    return response


def _filled(inputs: Any, render: Callable[[dict[str, Any], dict[str, Any]], str], fills: dict[str, str],
            data_fills: dict[str, Any]) -> str:
    """The memoised frame of ``inputs`` with this request's ``fills`` and ``data_fills`` put in
    their places (``render`` makes the page from texts and data entries)."""
    parts = page_memo.PAGES.html(inputs, lambda: page_memo.frame(render, list(fills), list(data_fills), _json_block))
    if parts is None:  # a marker did not come through as it went in: this page is rendered whole
        return render(fills, data_fills)
    return page_memo.fill(parts, fills, data_fills, _json_block)


def _lang_links(query: str, langs: Sequence[str]) -> dict[str, str]:
    """Each language's link: this page's query with ``lang`` set (moved last, as Starlette's
    ``include_query_params`` does), parsed once for all languages."""
    kept = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "lang"])
    head = "?" + kept + "&lang=" if kept else "?lang="
    return {code: head + quote_plus(code) for code in langs}


def _html(request: Request, template: str, lang: str, data: dict[str, Any] | None, langs: Sequence[str],
          context: dict[str, Any]) -> str:
    t = i18n.translator(lang)
    strings = i18n.js_strings(lang, script_strings.page_keys(_env, template))
    payload = {"lang": lang, "locale": LOCALE_TAGS[lang], "t": strings, **(data or {})}
    # relative links: never the request's Host header in a page (issue #21 item 16)
    lang_links = _lang_links(request.scope["query_string"].decode("utf-8", "replace"), langs)
    html: str = _env.get_template(template).render(t=t, lang=lang, lang_links=lang_links, all_langs=LANGS,
                                                   data=payload, **context)
    return html


def error_page(request: Request, status: int, message_key: str, *, lang: str | None = None) -> HTMLResponse:
    """The friendly page for 404 and friends, in the visitor's language."""
    lang = lang or request_lang(request)
    return page(request, "error.html", lang=lang, status=status, status_code=status, message_key=message_key,
                memo=True)
