"""A tiny run of benchmarks/fanout.py: the harness works end to end and nothing is lost.

Speed is measured by the benchmark, never asserted here: only that every press reached
every affected socket and that the figures are printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ("qtraq", "floor")
sys.path.insert(0, str(ROOT / "benchmarks"))

from fanout_stats import Press, Result, latencies  # noqa: E402


def test_a_socket_without_the_update_in_time_is_lost_and_a_later_version_counts() -> None:
    ms = 1_000_000
    presses = [Press(0, 5, 100 * ms, True), Press(0, 6, 200 * ms, True), Press(1, 1, 0, False)]
    receipts = [
        [[4, 0], [5, 103 * ms], [6, 210 * ms]],  # both updates
        [[4, 0], [6, 230 * ms]],                 # 5 coalesced into 6: 130 ms for press 5
        [[4, 0], [5, 101 * ms]],                 # never got 6
        [[4, 0], [5, 100 * ms + 11_000 * ms]],   # 5 came after the 10 s timeout; never got 6
    ]
    result = Result("x", "city", 4)
    latencies(result, presses, [[0, 1, 2, 3], []], receipts, timeout_ns=10_000 * ms)
    assert (result.presses, result.failed_presses, result.lost) == (2, 1, 3)
    assert sorted(result.deliveries) == [1.0, 3.0, 10.0, 30.0, 130.0]
    assert result.last == []  # each press lost a socket, so neither has a "last socket" time


@pytest.mark.slow
def test_small_city_run_loses_no_update_and_prints_every_figure(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--servers", ",".join(SERVERS),
         "--scenario", "city", "--sockets", "200", "--duration", "3", "--json", str(figures)],
        capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    header, *rows = done.stdout.splitlines()
    assert header.split()[:3] == ["scenario", "sockets", "server"]
    for server in SERVERS:
        cells = next(row.split() for row in rows if row.split()[2:3] == [server])
        assert all(float(cell) >= 0 for cell in cells[5:9])  # p50 p95 p99 max are numbers

    results = {r["server"]: r for r in json.loads(figures.read_text())}
    for server in SERVERS:
        r = results[server]
        assert (r["connected"], r["presses"], r["failed_presses"]) == (200, 60, 0), server
        assert (r["lost"], r["closed"], r["notes"]) == (0, 0, []), server
        assert len(r["deliveries"]) == 60 * 100  # each press reaches its queue's 99 patients + display
        assert r["kib_per_socket"] > 0
    assert "http worker" in results["qtraq"]["cpu_ms_per_press"]  # the server's parts, from /proc
    assert re.search(r"^qtraq city 200: CPU per press .*http worker \d+\.\d ms", done.stdout, re.M)


def test_an_exact_version_wins_over_a_later_one_seen_first() -> None:
    """A baseline's screen of several queues may get press 8's frame before press 7's: press 7
    is matched to its own frame, not to 8's (which came first and would look faster)."""
    ms = 1_000_000
    presses = [Press(0, 7, 0, True), Press(1, 8, 0, True)]
    result = Result("x", "hospital", 1)
    latencies(result, presses, [[0], [0]], [[[0, 0], [8, 4 * ms], [7, 9 * ms]]], timeout_ns=10_000 * ms)
    assert sorted(result.deliveries) == [4.0, 9.0] and result.lost == 0


@pytest.mark.slow
@pytest.mark.timeout(320)  # three servers set up 100 queues each; on a loaded CI box that took over 110 s
def test_small_hospital_run_reaches_every_screen_and_counts_the_anonymous_load(tmp_path: Path) -> None:
    """One clinic of 100 queues, 2 patients in each, 20 displays of 5 queues and 10 reception
    consoles; qtraq-live also under anonymous page loads: every press reaches its queue's
    patients, its display and every console, and every version is accounted for."""
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--servers", ",".join(SERVERS),
         "--scenario", "hospital", "--hospital", "200", "--anon-rate", "20", "--duration", "3",
         "--json", str(figures)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {(r["scenario"], r["server"]): r for r in json.loads(figures.read_text())}
    assert set(rows) == {("hospital", "qtraq"), ("hospital", "floor"), ("hospital+anon:off", "qtraq"),
                         ("hospital+anon:on", "qtraq")}  # quiet and loaded phases of one server
    for key, r in rows.items():
        assert (r["connected"], r["presses"], r["failed_presses"], r["lost"]) == (230, 60, 0, 0), key
        assert len(r["deliveries"]) == 60 * (2 + 1 + 10), key  # its 2 patients, its display, 10 consoles
        notes = [n for n in r["notes"] if not n.startswith("anonymous GETs")]
        assert notes == [], key
    anonymous = [n for n in rows[("hospital+anon:on", "qtraq")]["notes"] if n.startswith("anonymous GETs")]
    assert len(anonymous) == 2, anonymous  # one per loaded phase, none in the quiet ones
    assert all(re.fullmatch(r"anonymous GETs at 20/s: \d+ × 200", n) for n in anonymous), anonymous


def test_the_dispatch_benchmark_counts_what_a_press_reaches() -> None:
    """``benchmarks/fanout_dispatch.py`` on a small hospital of 3 queues: a press reaches its
    queue's 5 patients, the 20 displays (of 5 queues each: here all 3) with an update and a
    call each, and the 10 consoles."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fanout_dispatch.py"), "--queues", "3",
                          "--patients", "5", "--presses", "10"], capture_output=True, text=True, timeout=120, check=True)
    assert "= 45 subscribers; 10 presses" in out.stdout, out.stdout + out.stderr
    found = re.search(r"fan-out CPU per press: p50 ([\d.]+) ms.*messages per press: (\d+)", out.stdout)
    assert found is not None and float(found[1]) > 0, out.stdout
    assert int(found[2]) == 5 + 20 * 2 + 10, out.stdout


def test_the_engine_benchmark_prints_every_row() -> None:
    """``benchmarks/engine.py``'s engine part on a few hundred calls: every row is printed with
    a rate (it asserts no speed), so the benchmark does not rot between the runs that use it."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "engine.py"), "--skip-http", "--ops", "200"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.startswith("calibration: ")
    for op in ("issue", "next"):
        for how in ("awaited one by one", "50 in flight", "pipelined x100 (EVALSHA)"):
            row = re.search(rf"^{re.escape(f'{op}, {how}')} +200 ops +([\d,]+) ops/s", out, re.M)
            assert row is not None and int(row[1].replace(",", "")) > 0, out


@pytest.mark.slow
def test_a_baseline_commit_runs_beside_this_tree(tmp_path: Path) -> None:
    """``--baseline REF``: that commit's qtraq-live, exported with git archive, gets its own row
    in the same run (here HEAD, so both rows are this code), with nothing lost."""
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--servers", "qtraq", "--scenario", "city",
         "--sockets", "100", "--duration", "2", "--baseline", "HEAD", "--json", str(figures)],
        capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["server"]: r for r in json.loads(figures.read_text())}
    assert set(rows) == {"qtraq", "qtraq@HEAD"}
    for r in rows.values():
        assert (r["connected"], r["presses"], r["lost"], r["notes"]) == (100, 40, 0, []), r["server"]
    assert re.search(r"^\s*city\s+100\s+qtraq@HEAD\s+100\s+40\s", done.stdout, re.M), done.stdout


def test_the_client_count_runs_the_presses_it_counts(tmp_path: Path) -> None:
    """``benchmarks/engine_client.py``'s counted child (run here without valgrind): it sets up
    a clinic on a real redis-server and issues and calls the tickets asked for."""
    from engine_lua import start_redis

    redis, url = start_redis(tmp_path, callgrind=False)
    try:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "engine_client.py"), "--run", "3", "--url", url],
                       capture_output=True, text=True, timeout=60, check=True)
        import redis as redis_sync

        from qtraq_live.engine import redis_keys

        client = redis_sync.Redis(unix_socket_path=url.removeprefix("unix://"), decode_responses=True)
        events = [client.xrange(redis_keys.events("bench"))[i][1]["e"] for i in (-1, -4)]
        assert client.xlen(redis_keys.events("bench")) == 1 + 10 + 20 + 3 + 3  # clinic, queues, set-up, issues, calls
        assert '"type":"next"' in events[0] or '"type":"call' in events[0], events[0]
        assert '"type":"issue' in events[1], events[1]
    finally:
        redis.terminate()
        redis.wait()
