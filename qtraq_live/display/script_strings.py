"""Which browser strings (``js.*`` catalogue keys) a page ships: those its own scripts use.

Derived from the files themselves, never listed by hand: a page's scripts are the
``<script src="/static/….js">`` tags of its template and of every template it extends or
includes (a script behind ``{% if %}`` counts, a page may carry a little more, never less);
a script uses every quoted literal that is a ``js.`` key without its prefix
(``QT.t("minutes")``, ``ok ? "saved" : "failed"``), and every key that starts with a quoted
literal ending in ``_`` (``QT.t("status_" + s)``, ``word("portal_gender_", code)``).

One narrowing: a form field's own error sentence (``err_field_mobile``, which ``common.js``
shows next to the control named ``mobile``) goes only to pages whose templates have a control
of that name; elsewhere ``QT.errorText`` says the error code's sentence or the general one.
Everything is read once per process; ``tests/test_languages.py`` checks every script's keys
against what each page ships with its own reading of the call sites.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import jinja2
from jinja2 import meta

from .i18n import DEFAULT_LANG, JS_PREFIX, catalogue

__all__ = ["FIELD_ERROR_PREFIX", "page_fields", "page_keys", "page_scripts", "script_keys"]

# common.js: errorText's sentence for the field an API error names ("mobile: must be …").
FIELD_ERROR_PREFIX = "err_field_"
_SCRIPT_TAG = re.compile(r"""<script\b[^>]*\bsrc=["']/static/([\w.-]+\.js)["']""")
_CONTROL_NAME = re.compile(r"""<(?:input|select|textarea)\b[^>]*\bname=["'](\w+)["']""")
_LITERAL = re.compile(r""""([a-z0-9_]+)"|'([a-z0-9_]+)'""")


@cache
def _sources(env: jinja2.Environment, template: str) -> tuple[str, ...]:
    """The source of a template and of every template it extends or includes."""
    source = env.loader.get_source(env, template)[0] if env.loader else ""
    found = [source]
    for other in meta.find_referenced_templates(env.parse(source)):
        if other is not None:  # a name computed at render time: none of ours
            found.extend(_sources(env, other))
    return tuple(found)


@cache
def page_scripts(env: jinja2.Environment, template: str) -> tuple[str, ...]:
    """The static scripts a page loads, its parents' and partials' included, in order."""
    return tuple(dict.fromkeys(s for source in _sources(env, template) for s in _SCRIPT_TAG.findall(source)))


@cache
def page_fields(env: jinja2.Environment, template: str) -> frozenset[str]:
    """The names of the form controls a page's templates draw."""
    return frozenset(name for source in _sources(env, template) for name in _CONTROL_NAME.findall(source))


@cache
def _known() -> frozenset[str]:
    """Every ``js.`` key of the catalogue, without the prefix."""
    return frozenset(k[len(JS_PREFIX):] for k in catalogue(DEFAULT_LANG) if k.startswith(JS_PREFIX))


@cache
def script_keys(script: str) -> frozenset[str]:
    """The ``js.`` keys (without the prefix) that the static file ``script`` uses."""
    known = _known()
    text = resources.files("qtraq_live.display").joinpath("static", script).read_text(encoding="utf-8")
    used: set[str] = set()
    for double, single in _LITERAL.findall(text):
        literal = double or single
        if literal in known:
            used.add(literal)
        if literal.endswith("_"):
            used.update(key for key in known if key.startswith(literal))
    return frozenset(used)


@cache
def page_keys(env: jinja2.Environment, template: str) -> frozenset[str]:
    """The ``js.`` keys (without the prefix) that a page's scripts use, field errors only for
    the page's own fields."""
    used = frozenset().union(*(script_keys(s) for s in page_scripts(env, template)))
    fields = page_fields(env, template)
    return frozenset(k for k in used
                     if not k.startswith(FIELD_ERROR_PREFIX) or k[len(FIELD_ERROR_PREFIX):] in fields)
