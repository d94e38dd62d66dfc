"""Which speed tricks that lean on a library's private parts are on, and the switch that turns
them off.

Each trick lives in one adapter module, written for a range of versions of its library:

=============  ===================  =========================================================
name           adapter              leans on
=============  ===================  =========================================================
redis_pool     runtime/redis_conn.py        redis-py's pool privates (``_available_connections``, …)
redis_write    runtime/redis_conn.py        redis-py's connection ``_writer``; hiredis packing
ws_lean        realtime/ws_adapter.py        uvicorn's websockets Sans-I/O protocol internals
ws_write       realtime/ws_adapter.py        the same protocol, written to without an ASGI message
hub_eager      realtime/hub_send.py          stepping coroutines by hand (``_asyncio_future_blocking``)
rq_stop        workers/worker.py    redis-py 8's ``PubSubWorkerThread.stop(timeout)``
=============  ===================  =========================================================

A trick is on only when the installed library is in the range it was written for; otherwise
its adapter uses the library's public API, so an upgrade costs speed, never correctness.
``QTRAQ_FORCE_FALLBACKS=1`` (or a comma-separated list of names) turns them off anyway: CI
runs the tests of those paths once more that way, and ``docs/benchmarks.md`` measures each one
against its fallback.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version

log = logging.getLogger(__name__)

FORCE_ENV = "QTRAQ_FORCE_FALLBACKS"
NAMES = ("redis_pool", "redis_write", "ws_lean", "ws_write", "hub_eager", "rq_stop")

Version = tuple[int, ...]


def forced(name: str) -> bool:
    """True when the environment turns this trick off (``1``, ``all`` or a list naming it)."""
    raw = os.environ.get(FORCE_ENV, "").strip().lower()
    if raw in ("", "0", "no", "false"):
        return False
    return raw in ("1", "all", "yes", "true") or name in {n.strip() for n in raw.split(",")}


def installed(dist: str) -> Version | None:
    """The installed version of a distribution as numbers (``8.2.0`` → ``(8, 2, 0)``)."""
    if dist == "python":
        return tuple(sys.version_info[:3])
    try:
        text = version(dist)
    except PackageNotFoundError:
        return None
    return tuple(int(n) for n in re.findall(r"\d+", text.split("+")[0])[:3])


def within(dist: str, low: Version, high: Version) -> bool:
    """``low <= installed < high``."""
    found = installed(dist)
    return found is not None and low <= found < high


# Decisions are made at import, before the process has configured its logging (a record logged
# then would reach stderr as a bare line); they are logged by report(), once logging is set up.
_DECISIONS: list[tuple[int, str]] = []


def enabled(name: str, *requirements: tuple[str, Version, Version]) -> bool:
    """Whether trick ``name`` is on: not forced off, and every ``(dist, low, high)`` holds."""
    assert name in NAMES, name
    if forced(name):
        _DECISIONS.append((logging.INFO, f"fast path {name} off: {FORCE_ENV}"))
        return False
    missing = [f"{dist} {'.'.join(map(str, low))}–{'.'.join(map(str, high))}"
               for dist, low, high in requirements if not within(dist, low, high)]
    if missing:
        _DECISIONS.append((logging.WARNING, f"fast path {name} off: written for {', '.join(missing)}; "
                                            "using the public API"))
        return False
    return True


def report() -> None:
    """Log the fast paths turned off so far (``logs.configure_logging`` calls it)."""
    for level, text in _DECISIONS:
        log.log(level, "%s", text)
    _DECISIONS.clear()
