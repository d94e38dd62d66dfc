"""``qtraq-live abdm check``: is this server ready for ABDM Scan & Share?

Checks the ``[abdm]`` settings, starts a gateway session with the client id and secret, fetches
the gateway's signing keys, checks that every counter names a queue in the record, and prints
the callback URL to register with ABDM. Exit 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from contextlib import closing

import httpx

from ..config import Settings
from ..errors import ConfigError
from ..runtime import redis_conn
from . import protocol
from .gateway import Gateway, GatewayError, check_credentials


def check_settings(settings: Settings) -> None:
    """What ``serve`` refuses to start with (ConfigError naming the key)."""
    if not settings["abdm.enabled"]:
        return
    check_credentials(settings)
    if settings["abdm.verify"] == "none" and settings.production:
        raise ConfigError("abdm.verify", "none is only for a local test gateway, never in production")
    if not settings["abdm.counters"]:
        raise ConfigError("abdm.counters", "name at least one counter: counter-id = \"queue-id\"")


def callback_url(settings: Settings) -> str | None:
    base = settings["server.public_url"].rstrip("/")
    return base + protocol.SHARE_CALLBACK_PATH if base else None


def _known_queues(settings: Settings) -> set[str] | None:
    path = settings.data_dir / "qtraq.db"
    if not path.exists():
        return None
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {row[0] for row in db.execute("SELECT id FROM queues")}


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    ok = True

    def report(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        print(("ok    " if good else "FAIL  ") + text)

    if not settings["abdm.enabled"]:
        print("abdm.enabled is false: set it to true to answer Scan & Share (docs/abdm.md)")
        return 1
    check_settings(settings)
    report(True, f"settings: hip_id {settings['abdm.hip_id']}, gateway {settings['abdm.gateway_url']}"
                 f" (X-CM-ID {settings['abdm.cm_id']}), caller check {settings['abdm.verify']}")
    queues = _known_queues(settings)
    for counter, queue in sorted(settings["abdm.counters"].items()):
        report(queues is None or queue in queues, f"counter {counter} → queue {queue}"
               + (" (no record yet: not checked)" if queues is None else "" if queue in queues else ": no such queue"))
    conn = redis_conn.sync_client(settings, decode=False) if not settings.embedded_redis else None
    gateway = Gateway(settings, conn if conn is not None else _NoCache())  # type: ignore[arg-type]
    try:
        gateway.new_session()
        report(True, "gateway session: the client id and secret are accepted")
    except GatewayError as exc:
        report(False, f"gateway session: {exc.message}")
    try:
        r = httpx.get(gateway.base + protocol.CERTS_PATH, timeout=10,
                      headers=protocol.headers(settings["abdm.cm_id"], time.time()))
        keys = r.json().get("keys") if r.status_code == 200 else None
        report(bool(keys), f"gateway signing keys: {len(keys) if keys else 'none'} published")
    except (httpx.HTTPError, ValueError) as exc:
        report(False, f"gateway signing keys: {type(exc).__name__}")
    finally:
        gateway.close()
    url = callback_url(settings)
    if url is None:
        report(False, "server.public_url is empty: ABDM needs a public HTTPS URL (docs/deploy, docs/abdm.md)")
    else:
        report(url.startswith("https://"), f"register this bridge URL with ABDM: {url.removesuffix(protocol.SHARE_CALLBACK_PATH)}"
               + ("" if url.startswith("https://") else " (ABDM calls HTTPS URLs only)"))
        print(f"      (ABDM will call {url})")
    print("ready" if ok else "not ready", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


class _NoCache:
    """A stand-in for Redis when the check runs without the server's Redis: nothing is kept."""

    def get(self, key: str) -> None:
        return None

    def set(self, *args: object, **kwargs: object) -> None:
        return None

    def delete(self, *args: object) -> None:
        return None
