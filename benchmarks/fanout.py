"""WebSocket fan-out benchmark: qtraq-live and three baselines, same scenarios, same Redis.

    python benchmarks/fanout.py                  # quick: city at 1,000 sockets and big OPD, 10 s each
    python benchmarks/fanout.py --full           # city at 1k, 5k and 10k sockets and big OPD, 60 s each
    python benchmarks/fanout.py --scenario city --servers qtraq,floor --sockets 10000 --duration 60
    python benchmarks/fanout.py --scenario hospital --hospital 10000,36000 --anon-rate 200 --duration 30
    python benchmarks/fanout.py --scenario city --servers qtraq,floor --sockets 10000 --baseline 696627d

Scenarios: ``city`` (sockets/100 queues, each with 99 watching patients and 1 display, open-
loop "next" presses at 20/s over random queues), ``bigopd`` (one queue, 2,000 watching
patients and 10 displays, one press every 2 s) and ``hospital`` (one clinic of 100 queues,
sockets/100 patients watching in each, 20 displays showing 5 queues each and 10 reception
consoles showing all, 20 presses/s over random queues; past 18,000 sockets over
ceil(sockets/18,000) server processes; with ``--anon-rate`` also, for qtraq-live at the first
``--hospital`` size, two rows from one server: ``hospital+anon:on``, presses while anonymous
GETs of /join, /display and /t pages arrive at that rate, and ``hospital+anon:off``, presses in
quiet phases alternating with those). A press's latency on a socket runs from sending the HTTP
press to that socket reading the update; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout_servers import (SERVERS, Group, GroupPlan, Redis, ScreenPlan, Shared, load_cores, pinned,  # noqa: E402
                            qtraq_of)
from trees import exported  # noqa: E402
from fanout_stats import (Press, Result, box_busy_seconds, cpu_seconds, group_cpu, latencies, pss_kib,  # noqa: E402
                          table)

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"
ANONLOAD = Path(__file__).resolve().parent / "anonload.py"
SOCKETS_PER_LOADGEN = 15_000  # a process may hold 20,000 files here
SOCKETS_PER_SERVER = 18_000  # likewise for a server process: more sockets, more processes
LOSS_TIMEOUT_S = 10.0
HOSPITAL_QUEUES, HOSPITAL_DISPLAYS, QUEUES_PER_DISPLAY, HOSPITAL_RECEPTIONS = 100, 20, 5, 10


@dataclass
class Scenario:
    name: str
    plan: list[GroupPlan]
    rate: float  # presses per second, all queues together
    screens: list[ScreenPlan] = field(default_factory=list)  # sockets that show several queues
    one_clinic: bool = False  # every queue in one clinic (one version for all)
    workers: int = 1
    anon_rate: float = 0.0  # anonymous page GETs per second during the presses


def scenario(name: str, sockets: int, duration: float, anon_rate: float = 0.0) -> Scenario:
    if name.startswith("hospital"):
        rate = 20.0
        lead = math.ceil(rate * duration / HOSPITAL_QUEUES * 1.5 + 10)
        screens = [ScreenPlan("display", list(range(i * QUEUES_PER_DISPLAY, (i + 1) * QUEUES_PER_DISPLAY)))
                   for i in range(HOSPITAL_DISPLAYS)]
        screens += [ScreenPlan("reception", list(range(HOSPITAL_QUEUES))) for _ in range(HOSPITAL_RECEPTIONS)]
        return Scenario(name, [GroupPlan(sockets // HOSPITAL_QUEUES, 0, lead) for _ in range(HOSPITAL_QUEUES)],
                        rate, screens, True, math.ceil(sockets / SOCKETS_PER_SERVER), anon_rate)
    if name == "city":
        queues, rate = max(1, sockets // 100), 20.0
        per_queue = rate * duration / queues
        lead = math.ceil(per_queue * 1.5 + 10)
        return Scenario(name, [GroupPlan(99, 1, lead) for _ in range(queues)], rate)
    if name == "bigopd":
        rate = 0.5
        return Scenario(name, [GroupPlan(2000, 10, math.ceil(rate * duration * 1.5 + 10))], rate)
    raise ValueError(f"unknown scenario {name!r}")


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Loadgen:
    """One load-generator process on the load cores, driven line by line over stdin."""

    def __init__(self, sockets: list[dict[str, str]], workdir: Path, index: int) -> None:
        spec = workdir / f"loadgen{index}.json"
        spec.write_text(json.dumps({"sockets": sockets, "concurrency": 100}))
        self.out = workdir / f"receipts{index}.json"
        self.size = len(sockets)
        self.proc = subprocess.Popen(pinned([sys.executable, str(LOADGEN), str(spec), str(self.out)],
                                            load_cores()),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, command: str) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited with {self.proc.wait()}")
        return dict(json.loads(line))

    def finish(self) -> dict[str, Any]:
        self.ask("stop")
        self.proc.wait(30)
        return dict(json.loads(self.out.read_text()))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Load:
    """Every socket of a run, shuffled (so any share of them reaches every queue, and a PSS
    slope is not a mirror's cost) and dealt to as few load generators as the file cap allows."""

    def __init__(self, specs: list[dict[str, str]], workdir: Path) -> None:
        self.order = list(range(len(specs)))
        random.Random(len(specs)).shuffle(self.order)
        self.chunks = math.ceil(len(specs) / SOCKETS_PER_LOADGEN)
        self.procs = [Loadgen([specs[k] for k in self.order[i::self.chunks]], workdir, i)
                      for i in range(self.chunks)]

    async def ask(self, command: str) -> int:
        """Send to every load generator at once; the sum of their numeric answers."""
        answers = await asyncio.gather(*(asyncio.to_thread(lg.ask, command) for lg in self.procs))
        return sum(next(iter(a.values())) for a in answers)

    async def connect(self, share: float) -> int:
        """Open the first ``share`` of each generator's sockets; how many are open in all."""
        answers = await asyncio.gather(*(
            asyncio.to_thread(lg.ask, f"connect {math.ceil(lg.size * share)}") for lg in self.procs))
        return sum(a["connected"] for a in answers)

    def finish(self, result: Result) -> list[list[list[int]]]:
        """Stop every generator; receipts in the order of ``specs``; closes and errors noted."""
        receipts: list[list[list[int]]] = [[] for _ in self.order]
        for i, lg in enumerate(self.procs):
            out = lg.finish()
            for j, socket_receipts in enumerate(out["receipts"]):
                receipts[self.order[j * self.chunks + i]] = socket_receipts
            result.closed += len(out["closed"])
            result.notes += [f"{count} × {error}" for error, count in out["errors"].items()]
        return receipts

    def kill(self) -> None:
        for lg in self.procs:
            lg.kill()


class Driver:
    """Open loop: a press every 1/rate s on a random queue, never waiting for answers. A queue
    with a press still in flight is skipped when another is free, so each queue's presses (and
    versions) stay in order; when every queue is busy the press waits behind its queue's.
    In one clinic of many queues the baselines' ``seq`` counts every press (one sequence, as
    the clinic's version); qtraq-live's versions are read back afterwards. ``run`` may be
    called several times (phases): the sequences carry on."""

    def __init__(self, server: Any, groups: list[Group], sc: Scenario, http: httpx.AsyncClient) -> None:
        self.server, self.groups, self.sc, self.http = server, groups, sc, http
        self.sent = [0] * len(groups)
        self.done = [0] * len(groups)  # successful presses: the n-th makes version first_version + n
        self.budget = [plan.lead for plan in sc.plan]
        self.counter = iter(range(1, 1 << 62))
        self.in_flight: dict[int, asyncio.Task[None]] = {}

    async def run(self, duration: float) -> list[Press]:
        presses: list[Press] = []
        groups, sc, in_flight = self.groups, self.sc, self.in_flight

        async def press(g: int, before: asyncio.Task[None] | None) -> None:
            if before is not None:
                await before
            seq = next(self.counter) if sc.one_clinic else self.done[g] + 1
            url, body, headers = self.server.press(groups[g], seq)
            sent_ns = time.monotonic_ns()
            try:
                ok = (await self.http.post(url, json=body, headers=headers)).status_code == 200
            except httpx.HTTPError:
                ok = False
            self.done[g] += ok
            presses.append(Press(g, groups[g].first_version + seq, sent_ns, ok))

        start = time.monotonic()
        for n in range(int(duration * sc.rate)):
            await asyncio.sleep(max(0.0, start + n / sc.rate - time.monotonic()))
            open_groups = [g for g in range(len(groups)) if self.sent[g] < self.budget[g]]
            idle = [g for g in open_groups if g not in in_flight or in_flight[g].done()]
            g = random.choice(idle or open_groups)
            self.sent[g] += 1
            in_flight[g] = asyncio.create_task(press(g, in_flight.get(g)))
        await asyncio.gather(*in_flight.values())
        presses.sort(key=lambda p: p.sent_ns)  # each queue's presses in the order they were made
        return presses


class Anonymous:
    """``anonload.py`` on the load cores: open-loop anonymous GETs of public pages at ``rate``/s
    while the presses run (no session; a TV page's URL carries its key, as a TV's does)."""

    def __init__(self, base: str, paths: list[str], rate: float, workdir: Path) -> None:
        spec = workdir / "anonload.json"
        spec.write_text(json.dumps({"base": base, "paths": paths, "rate": rate}))
        self.out = workdir / "anonload-out.json"
        self.rate = rate
        self.proc = subprocess.Popen(pinned([sys.executable, str(ANONLOAD), str(spec), str(self.out)], load_cores()),
                                     stdin=subprocess.PIPE)

    def stop(self) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)
        out = json.loads(self.out.read_text())
        late = f", {out['late']} not sent (every connection busy)" if out["late"] else ""
        return f"anonymous GETs at {self.rate:.0f}/s: " + ", ".join(
            f"{n} × {status}" for status, n in sorted(out["statuses"].items())) + late


ANON_PAIRS = 2  # a run with anonymous load alternates quiet and loaded phases this many times
ANON_WARMUP_S = 1.0


async def run_one(name: str, sc: Scenario, duration: float, base: Path) -> list[Result]:
    """One server on one scenario: one row, or with ``anon_rate`` two rows from the same server
    and sockets, the presses of quiet phases (``…:off``) and of phases under anonymous load
    (``…:on``) alternating, ``duration`` s of presses each: a comparison that the drift of
    this box between two runs cannot tilt."""
    sockets = sum(p.patients + p.displays for p in sc.plan) + len(sc.screens)
    if sc.anon_rate:
        rows = [Result(name, sc.name + ":off", sockets), Result(name, sc.name + ":on", sockets)]
        phases = [(i % 2, i % 2 == 1, duration / ANON_PAIRS) for i in range(2 * ANON_PAIRS)]  # row, loaded, s
    else:
        rows = [Result(name, sc.name, sockets)]
        phases = [(0, False, duration)]
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{sc.name}-{sockets}-", dir=base))
    server = SERVERS[name]()
    server.workers = sc.workers
    redis = Redis(workdir / "redis") if server.needs_redis else None
    load: Load | None = None
    anonymous: Anonymous | None = None
    pressed: list[list[Press]] = [[] for _ in rows]
    # per row: CPU by part of the server; wall, server, Redis and others' CPU s
    spent: list[tuple[dict[str, float], list[float]]] = [({}, [0.0] * 4) for _ in rows]
    try:
        server.start(redis.url if redis else "", workdir)
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=32)) as http:
            began = time.monotonic()
            groups, shared = await server.setup(http, sc.plan, sc.screens, sc.one_clinic)
            say(f"  set up in {time.monotonic() - began:.1f} s")
            group_sockets, specs = socket_plan(groups, shared)
            load = Load(specs, workdir)
            await measure_idle(rows[0], server.pid, load)
            say(f"  {rows[0].connected} sockets open in {time.monotonic() - began:.1f} s")
            await load.ask("mark")
            driver = Driver(server, groups, sc, http)
            for r, anon, seconds in phases:
                if anon:
                    anonymous = Anonymous(server.base, server.anonymous_paths(groups), sc.anon_rate, workdir)
                    await asyncio.sleep(ANON_WARMUP_S)  # its GETs under way before the first press
                before = cpu_figures(server.pid, redis.pid if redis else None)
                parts_before = group_cpu(server.pid)
                gc.collect()  # no collector pause between a press's time stamp and its request
                gc.disable()
                try:
                    pressed[r] += await driver.run(seconds)
                finally:
                    gc.enable()
                parts_after = group_cpu(server.pid)
                after = cpu_figures(server.pid, redis.pid if redis else None)
                if anonymous is not None:
                    rows[r].notes.append(anonymous.stop())
                    anonymous = None
                parts, figures = spent[r]
                for part, cpu in parts_after.items():
                    parts[part] = parts.get(part, 0.0) + cpu - parts_before.get(part, 0.0)
                for i in range(4):
                    figures[i] += after[i] - before[i]
            presses = sorted((p for ps in pressed for p in ps), key=lambda p: p.sent_ns)
            rows[0].notes += await server.resolve_versions(groups, presses)
            for row, (parts, (wall, server_cpu, redis_cpu, others)), its in zip(rows, spent, pressed):
                row.cpu_ms_per_press = cpu_per_press(parts, redis_cpu, its)
                row.cpu_pct, row.redis_cpu_pct, row.others_cpu_pct = (100 * x / wall for x in (server_cpu, redis_cpu, others))
                row.connected, row.kib_per_socket = rows[0].connected, rows[0].kib_per_socket
            expected = sum(len(group_sockets[p.group]) for p in presses if p.ok)
            deadline = time.monotonic() + LOSS_TIMEOUT_S
            while await load.ask("count") < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await check_versions(rows[0], server, http, groups, presses, sc.one_clinic)
        receipts = load.finish(rows[0])
    finally:
        if anonymous is not None and anonymous.proc.poll() is None:
            anonymous.proc.kill()
        if load:
            load.kill()
        server.stop()
        if redis:
            redis.stop()
    for row, its in zip(rows, pressed):
        latencies(row, its, group_sockets, receipts, int(LOSS_TIMEOUT_S * 1e9))
    return rows


def socket_plan(groups: list[Group], shared: list[Shared]) -> tuple[list[list[int]], list[dict[str, Any]]]:
    """Every socket once (each group's own, then the shared screens) and, per group, the
    indexes of the sockets a press on it reaches."""
    specs: list[dict[str, Any]] = []
    group_sockets: list[list[int]] = []
    for group in groups:
        group_sockets.append(list(range(len(specs), len(specs) + len(group.urls))))
        specs += [{"url": url, "proto": proto} for url, proto in group.urls]
    for screen in shared:
        for g in screen.groups:
            group_sockets[g].append(len(specs))
        specs.append({"url": screen.url, "proto": screen.proto, "headers": screen.headers})
    return group_sockets, specs


def cpu_per_press(parts: dict[str, float], redis_cpu: float, presses: list[Press]) -> dict[str, float]:
    """CPU ms per press of each part of the server (and Redis) during the presses: a figure
    that a busy box disturbs far less than a latency (what the scheduler did not give the
    server shows as latency, not as its CPU), though at 10 ms clock ticks it needs many presses."""
    n = max(1, sum(1 for p in presses if p.ok))
    parts = {**parts, "redis": redis_cpu} if redis_cpu else dict(parts)
    return {role: round(1000 * cpu / n, 2) for role, cpu in parts.items() if cpu > 0}


def cpu_figures(server_pid: int, redis_pid: int | None) -> tuple[float, float, float, float]:
    """(now, server tree, Redis, everything outside this benchmark's process tree) in CPU s."""
    ours = cpu_seconds(os.getpid())  # the coordinator's tree holds servers, Redis, load generators
    return (time.monotonic(), cpu_seconds(server_pid), cpu_seconds(redis_pid) if redis_pid else 0.0,
            box_busy_seconds() - ours)


async def measure_idle(result: Result, pid: int, load: Load) -> None:
    """Memory per idle socket: the server tree's PSS slope from half the sockets to all."""
    half = await load.connect(0.5)
    pss_half = pss_kib(pid)
    result.connected = await load.connect(1.0)
    if result.connected > half:
        result.kib_per_socket = (pss_kib(pid) - pss_half) / (result.connected - half)


async def check_versions(result: Result, server: Any, http: httpx.AsyncClient, groups: list[Group],
                         presses: list[Press], one_clinic: bool) -> None:
    """Each press must have made exactly one version, or latencies were matched wrongly."""
    if one_clinic:
        final = await server.final_version(http, groups[0])
        want = groups[0].first_version + sum(1 for p in presses if p.ok)
        if final is not None and final != want:
            result.notes.append(f"clinic: version {final}, expected {want}")
        return
    for g, group in enumerate(groups):
        final = await server.final_version(http, group)
        want = group.first_version + sum(1 for p in presses if p.group == g and p.ok)
        if final is not None and final != want:
            result.notes.append(f"queue {group.name}: version {final}, expected {want}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["city", "bigopd", "hospital", "all"], default="all")
    parser.add_argument("--servers", default="qtraq,floor,socketio,channels",
                        help="comma-separated, from: " + ", ".join(SERVERS))
    parser.add_argument("--sockets", default="1000", help="city sizes, comma-separated")
    parser.add_argument("--hospital", default="10000", help="hospital sizes (patient sockets), comma-separated")
    parser.add_argument("--workers", type=int, default=0,
                        help="server processes for the hospital (default: one per 18,000 sockets)")
    parser.add_argument("--anon-rate", type=float, default=0.0,
                        help="also a hospital+anon row (first --hospital size): anonymous page GETs per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of presses per run")
    parser.add_argument("--quick", action="store_true", help="city at 1,000 sockets and big OPD, 10 s each (default)")
    parser.add_argument("--full", action="store_true", help="city at 1,000, 5,000 and 10,000 sockets and big OPD, 60 s each")
    parser.add_argument("--baseline", metavar="GIT_REF",
                        help="also run qtraq-live of this commit (git archive), after this tree's, on every scenario")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs and receipts")
    args = parser.parse_args(argv)
    if args.quick or args.full:
        args.sockets, args.duration = ("1000,5000,10000", 60.0) if args.full else ("1000", 10.0)
    return args


async def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    os.sched_setaffinity(0, load_cores())
    servers = [s for s in args.servers.split(",") if s]
    base = Path(tempfile.mkdtemp(prefix="qtraq-fanout-"))
    if args.baseline and "qtraq" in servers:  # side by side, in the same run: this box drifts
        old = f"qtraq@{args.baseline}"
        SERVERS[old] = qtraq_of(exported(args.baseline, Path(tempfile.mkdtemp(prefix="tree-", dir=base))))
        servers.insert(servers.index("qtraq") + 1, old)
    runs = [(scenario("city", int(n), args.duration), servers)
            for n in args.sockets.split(",")] if args.scenario in ("city", "all") else []
    if args.scenario in ("hospital", "all"):
        for n in args.hospital.split(","):
            sc = scenario("hospital", int(n), args.duration)
            sc.workers = args.workers or sc.workers
            if sc.workers > 1:  # the floor is one process with no Redis: it cannot spread
                sc.name = f"hospital-{sc.workers}w"
            runs.append((sc, [s for s in servers if sc.workers == 1 or s != "floor"]))
            if args.anon_rate and "qtraq" in servers and n == args.hospital.split(",")[0]:  # the first size
                anon = scenario("hospital", int(n), 2 * args.duration, args.anon_rate)  # both phases' presses
                anon.workers = sc.workers
                anon.name = sc.name + "+anon"
                runs.append((anon, ["qtraq"]))
    runs += [(scenario("bigopd", 2010, args.duration), servers)] if args.scenario in ("bigopd", "all") else []
    results = []
    try:
        for sc, names in runs:
            for name in names:
                say(f"running {name} {sc.name}, {args.duration:.0f} s ...")
                try:
                    rows = await run_one(name, sc, args.duration, base)
                except Exception as exc:  # one server failing must not cost the other rows
                    say(f"  failed: {exc!r}")
                    results.append(Result(name, sc.name, 0, notes=[f"run failed: {exc!r}"[:300]]))
                else:
                    results += rows
                    for line in table(rows).splitlines()[1:1 + len(rows)]:
                        say("  " + line.strip())
    finally:
        if args.keep:
            say(f"servers' logs and load generators' receipts kept in {base}")
        else:
            shutil.rmtree(base)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results]))
    return results


if __name__ == "__main__":
    asyncio.run(main())
