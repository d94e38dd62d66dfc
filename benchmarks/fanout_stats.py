"""Figures for benchmarks/fanout.py: process-tree memory and CPU, latencies, the table."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant, from the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def pss_kib(pid: int) -> int:
    """Proportional set size of the whole process tree: shared pages counted once."""
    total = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """utime + stime of the living process tree."""
    return sum(process_cpu_seconds(member) for member in tree(pid))


def role_of(pid: int) -> str:
    """Which part of ``qtraq-live serve`` a process is, from its command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    for needle, role in (("redis-server", "redis-server"), ("duties", "duties"), ("cli worker", "rq worker"),
                         ("multiprocessing", "http worker"), ("serve", "serve")):
        if needle in cmd:
            return role
    return cmd[:30]


def group_cpu(leader: int) -> dict[str, float]:
    """CPU seconds used so far by each process of the server's tree (the embedded Redis and
    the duties process start their own sessions, so a process group would miss them), by role."""
    out: dict[str, float] = {}
    for pid in tree(leader):
        name = role_of(pid)
        out[name] = out.get(name, 0.0) + process_cpu_seconds(pid)
    return out


def box_busy_seconds() -> float:
    """CPU time every core of the machine spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # minus idle and iowait


@dataclass
class Press:
    group: int
    version: int
    sent_ns: int
    ok: bool


@dataclass
class Result:
    server: str
    scenario: str
    sockets: int
    connected: int = 0
    presses: int = 0
    failed_presses: int = 0
    deliveries: list[float] = field(default_factory=list)  # ms, one per affected socket per press
    last: list[float] = field(default_factory=list)  # ms, press to its last affected socket
    lost: int = 0
    closed: int = 0
    kib_per_socket: float = 0.0
    cpu_pct: float = 0.0
    redis_cpu_pct: float = 0.0
    others_cpu_pct: float = 0.0  # what processes outside the benchmark used meanwhile
    notes: list[str] = field(default_factory=list)
    cpu_ms_per_press: dict[str, float] = field(default_factory=dict)  # by part of the server, and Redis


def latencies(result: Result, presses: list[Press], group_sockets: list[list[int]],
              receipts: list[list[list[int]]], timeout_ns: int) -> None:
    """Fill deliveries, last and lost: a socket has a press's update when it first holds a
    message with that version, or else the first with a later one (a server may coalesce),
    within the timeout. The exact match comes first because a screen of several queues of a
    baseline may see two presses' sequence numbers out of order."""
    versions: list[list[int]] = []
    times: list[list[int]] = []
    exact: list[dict[int, int]] = []
    for socket_receipts in receipts:
        running, vs, first = -1, [], {}
        for version, t in socket_receipts:
            running = max(running, version)
            vs.append(running)
            first.setdefault(version, t)
        versions.append(vs)
        times.append([t for _v, t in socket_receipts])
        exact.append(first)
    for press in presses:
        if not press.ok:
            result.failed_presses += 1
            continue
        result.presses += 1
        worst = 0.0
        for sock in group_sockets[press.group]:
            got = exact[sock].get(press.version)
            if got is None:
                at = bisect.bisect_left(versions[sock], press.version)
                got = times[sock][at] if at < len(times[sock]) else None
            delay = got - press.sent_ns if got is not None else timeout_ns + 1
            if delay > timeout_ns or delay < 0:
                result.lost += 1
                worst = float("inf")
                continue
            ms = delay / 1e6
            result.deliveries.append(ms)
            worst = max(worst, ms)
        if worst != float("inf"):
            result.last.append(worst)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


COLUMNS = ("scenario", "sockets", "server", "conn", "presses", "p50", "p95", "p99", "max",
           "last p99", "lost", "KiB/sock", "cpu%", "redis%", "others%", "ours/p99", "ours/last99", "ours/KiB")


def table(results: list[Result]) -> str:
    """One row per server × scenario × size; ratio columns compare qtraq with that row."""
    ours = {(r.scenario, r.sockets): r for r in results if r.server == "qtraq"}
    rows: list[tuple[str, ...]] = [COLUMNS]
    for r in results:
        mine = ours.get((r.scenario, r.sockets))
        p99, last99 = percentile(r.deliveries, 99), percentile(r.last, 99)

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}" if mine is not None and r is not mine and b > 0 else "-"

        rows.append((
            r.scenario, str(r.sockets), r.server, str(r.connected), str(r.presses),
            *(f"{percentile(r.deliveries, q):.1f}" for q in (50, 95, 99)),
            f"{max(r.deliveries, default=float('nan')):.1f}", f"{last99:.1f}", str(r.lost),
            f"{r.kib_per_socket:.1f}", f"{r.cpu_pct:.0f}", f"{r.redis_cpu_pct:.0f}", f"{r.others_cpu_pct:.0f}",
            ratio(percentile(mine.deliveries, 99), p99) if mine else "-",
            ratio(percentile(mine.last, 99), last99) if mine else "-",
            ratio(mine.kib_per_socket, r.kib_per_socket) if mine else "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    notes = [f"{r.server} {r.scenario} {r.sockets}: {note}" for r in results for note in r.notes]
    for r in results:
        if r.cpu_ms_per_press:
            parts = ", ".join(f"{part} {ms:.1f} ms" for part, ms in sorted(r.cpu_ms_per_press.items()))
            notes.append(f"{r.server} {r.scenario} {r.sockets}: CPU per press {parts}")
    return "\n".join(lines + ([""] + notes if notes else []))
