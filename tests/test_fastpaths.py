"""The fast-path switch: a trick is on only with the library version it was written for, and
``QTRAQ_FORCE_FALLBACKS`` turns it off; each adapter then uses the public API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qtraq_live.runtime import fastpaths

ROOT = Path(__file__).resolve().parent.parent
REPORT = """
import json
from qtraq_live.runtime import redis_conn; from qtraq_live.realtime import ws_adapter, hub_send
from qtraq_live.workers import worker
print(json.dumps({"redis_pool": redis_conn.REDIS_POOL, "redis_write": redis_conn.REDIS_WRITE,
                  "ws_lean": ws_adapter.WS_LEAN, "ws_write": ws_adapter.WS_WRITE, "ws_impl": ws_adapter.WS_IMPL,
                  "hub_eager": hub_send.HUB_EAGER, "rq_stop": worker.RQ_STOP,
                  "unix_class": redis_conn.packed_class(redis_conn.UnixDomainSocketConnection).__name__}))
"""


def adapters(switch: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != fastpaths.FORCE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if switch is not None:
        env[fastpaths.FORCE_ENV] = switch
    out = subprocess.run([sys.executable, "-c", REPORT], env=env, capture_output=True, text=True, check=True)
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def test_the_switch_turns_every_fast_path_off() -> None:
    off = adapters("1")
    assert {k: v for k, v in off.items() if k in fastpaths.NAMES} == {name: False for name in fastpaths.NAMES}
    assert off["ws_impl"] == "websockets-sansio" and off["unix_class"] == "UnixDomainSocketConnection"


def test_one_fast_path_can_be_turned_off_alone() -> None:
    report = adapters("redis_pool")
    assert report["redis_pool"] is False
    assert report["redis_write"] == adapters(None)["redis_write"]  # the others as detected


@pytest.mark.parametrize(("raw", "name", "off"), [
    ("", "ws_lean", False), ("0", "ws_lean", False), ("1", "ws_lean", True), ("all", "hub_eager", True),
    ("ws_lean, hub_eager", "hub_eager", True), ("ws_lean", "redis_pool", False),
])
def test_what_the_variable_means(monkeypatch: pytest.MonkeyPatch, raw: str, name: str, off: bool) -> None:
    monkeypatch.setenv(fastpaths.FORCE_ENV, raw)
    assert fastpaths.forced(name) is off


def test_a_library_outside_the_written_for_range_gets_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fastpaths.FORCE_ENV, raising=False)
    monkeypatch.setattr(fastpaths, "installed", lambda dist: {"redis": (9, 0, 1)}.get(dist, (1, 0, 0)))
    assert fastpaths.enabled("redis_pool", ("redis", (8, 0), (9, 0))) is False
    monkeypatch.setattr(fastpaths, "installed", lambda dist: (8, 2, 0))
    assert fastpaths.enabled("redis_pool", ("redis", (8, 0), (9, 0))) is True
    monkeypatch.undo()
    assert fastpaths.installed("no-such-distribution-here") is None
    assert fastpaths.installed("python") == tuple(sys.version_info[:3])


def test_a_turned_off_fast_path_is_logged_once_logging_is_set_up_not_as_a_bare_line() -> None:
    # Imported before logging is configured, a warning would reach stderr as plain text and
    # break a JSON log; the decision waits for configure_logging, which logs it as a record.
    code = """
from qtraq_live.runtime import fastpaths, logs
from qtraq_live.config import load_settings
assert not fastpaths.enabled("ws_lean", ("python", (2, 0), (2, 1)))
settings = load_settings()
logs.configure_logging(settings)
"""
    env = {k: v for k, v in os.environ.items() if k != fastpaths.FORCE_ENV}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), QTRAQ_LOG_FORMAT="json")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "fast path ws_lean off" in line]
    assert len(lines) == 1, done.stderr
    record = json.loads(lines[0])
    assert (record["level"], record["logger"]) == ("warning", "qtraq_live.runtime.fastpaths")
    assert "written for python 2.0–2.1" in record["message"]
