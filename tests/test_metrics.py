"""Metrics: every family the operator needs, summed over all processes of a real ``serve``,
and the example Grafana dashboard querying only what ``/metrics`` exports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from qtraq_live import metrics
from qtraq_live.engine.queue_figures import queue_families
from qtraq_live.errors import Unavailable
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record.store import Store

from tests.support_notify import Sink, sink  # noqa: F401
from tests.support_observe import Samples, observed_server, run_flow, samples_of, scrape, until, value

DASHBOARD = Path(__file__).parent.parent / "docs" / "deploy" / "grafana-dashboard.json"
FAMILIES = ("qtraq_ws_connections", "qtraq_ws_messages_sent", "qtraq_press_to_send_seconds", "qtraq_queue_waiting",
            "qtraq_queue_wait_seconds", "qtraq_queue_longest_wait_seconds", "qtraq_notices", "qtraq_redis_errors",
            "qtraq_sqlite_errors", "qtraq_http_requests", "qtraq_press_seconds", "qtraq_tickets_issued")


def test_a_served_morning_shows_in_metrics_summed_over_processes(tmp_path: Path, sink: Sink) -> None:  # noqa: F811
    with observed_server(tmp_path, sink, args=["--workers", "2"]) as srv:
        flow = run_flow(srv)
        try:
            # the socket lives in one HTTP process; either may answer the scrape
            s = until(srv.url, lambda s: value(s, "qtraq_ws_connections", kind="display") == 1, "the display gauge")
            assert value(s, "qtraq_press_to_send_seconds_count") >= 1  # the call reached the screen
            assert value(s, "qtraq_ws_messages_sent_total", kind="display") >= 3  # snapshot, updates, call
            assert value(s, "qtraq_tickets_issued_total", via="reception") == 2
            assert value(s, "qtraq_queue_waiting", queue="gp") == 1
            assert 0 < value(s, "qtraq_queue_longest_wait_seconds", queue="gp") < 120
            assert value(s, "qtraq_queue_wait_seconds_count", queue="gp") == 1
            assert value(s, "qtraq_press_seconds_count") == 1
            assert value(s, "qtraq_http_requests_total", method="POST", route="/api/v1/queues/{queue}/next",
                         status="200") == 1
            # notices are counted by the duties process, sends happen in RQ workers: all summed here
            until(srv.url, lambda s: value(s, "qtraq_notices_total", channel="sms", outcome="sent") >= 3
                  and value(s, "qtraq_notices_total", channel="email", outcome="retried") >= 1,
                  "SMS sent and email retried")
        finally:
            flow.display.close()
            flow.admin.close()
        until(srv.url, lambda s: value(s, "qtraq_ws_connections", kind="display") == 0, "the socket to be gone")
        text, s = scrape(srv.url)
    for name in FAMILIES:
        assert re.search(rf"^# TYPE {name}(_total)? ", text, re.M), name
    assert value(s, "qtraq_redis_errors_total") == 0 and value(s, "qtraq_sqlite_errors_total") == 0
    for query in dashboard_queries():
        for name in re.findall(r"\bqtraq_[a-z_]+", query):
            assert any(sample == name for sample, _ in s), (name, query)


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]


def test_dashboard_is_a_grafana_dashboard_with_a_prometheus_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["schemaVersion"] >= 30 and board["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
    queried = " ".join(dashboard_queries())
    for needed in ("qtraq_ws_connections", "histogram_quantile(0.99", "histogram_quantile(0.5",
                   "qtraq_ws_messages_sent_total", "qtraq_queue_waiting", "qtraq_queue_wait_seconds_bucket",
                   "qtraq_notices_total", "qtraq_redis_errors_total", "qtraq_sqlite_errors_total"):
        assert needed in queried, needed


async def test_queue_figures_come_from_redis(aredis: aioredis.Redis, engine: QueueEngine) -> None:
    await engine.create_clinic("c1", "Clinic", timezone="UTC")
    await engine.create_queue("c1", "gp", "GP", "A")
    await engine.create_queue("c1", "eye", "Eye", "B")
    earlier = QueueEngine(aredis, clock=lambda: time.time() - 600)
    await earlier.issue("gp")  # normal, ten minutes ago
    await engine.issue("gp", priority=1)  # urgent, now: first in line but not the longest wait
    families = {f.name: {s.labels["queue"]: s.value for s in f.samples} for f in await queue_families(aredis)}
    assert families["qtraq_queue_waiting"] == {"gp": 2, "eye": 0}
    assert 595 < families["qtraq_queue_longest_wait_seconds"]["gp"] < 660
    assert families["qtraq_queue_longest_wait_seconds"]["eye"] == 0


def test_notice_outcomes() -> None:
    before = value(scrape_local(), "qtraq_notices_total", channel="sms", outcome="retried")
    metrics.count_notices([("1-0", {"state": "retrying", "channel": "sms"}),
                           ("2-0", {"state": "sending", "channel": "sms"})])  # not an outcome
    assert value(scrape_local(), "qtraq_notices_total", channel="sms", outcome="retried") == before + 1


def test_the_multiprocess_dir_sums_live_processes_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"left by an earlier run")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")
    metrics.use_multiprocess_dir(directory)  # the supervisor, before any child
    assert list(directory.iterdir()) == [] and os.environ[metrics.MULTIPROC_ENV] == str(directory)
    # a child holding one open display socket, as an HTTP process would
    child = subprocess.Popen([sys.executable, "-c", "import sys; from qtraq_live import metrics; "
                              "metrics.WS_CONNECTIONS.labels('display').inc(); "
                              "print('up', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ))
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        assert value(scrape_local(), "qtraq_ws_connections", kind="display") == 1
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert value(scrape_local(), "qtraq_ws_connections", kind="display") == 0  # it died holding the socket


def scrape_local() -> Samples:
    """This process's exposition (the multiprocess sum when the variable is set)."""
    return samples_of(metrics.exposition().decode())


async def test_backing_store_failures_are_counted(tmp_path: Path) -> None:
    redis_errors = value(scrape_local(), "qtraq_redis_errors_total")
    gone = aioredis.Redis(unix_socket_path=str(tmp_path / "no-redis.sock"), decode_responses=True,
                          retry=Retry(NoBackoff(), 0))  # fail at once
    with pytest.raises(Unavailable):
        await QueueEngine(gone).clinic_ids()
    await gone.aclose()
    assert value(scrape_local(), "qtraq_redis_errors_total") == redis_errors + 1
    sqlite_errors = value(scrape_local(), "qtraq_sqlite_errors_total")
    (tmp_path / "qtraq.db").mkdir()  # a directory where the record should be
    with pytest.raises(Unavailable):
        await Store(tmp_path / "qtraq.db").open()
    assert value(scrape_local(), "qtraq_sqlite_errors_total") == sqlite_errors + 1
