"""``qtraq-live serve``: the supervisor that starts every process of one box, in order.

    embedded Redis (unless QTRAQ_REDIS_URL)        stopped last
    start-up step: rebuild Redis from SQLite if Redis is empty, apply [[clinics]]/[[staff]]
    duties process (mode "all": persister, notifier, scheduler)
    RQ worker processes (embedded mode only; restarted when they die)
    N uvicorn processes sharing one listening socket bound here (so --port 0 works)

It writes ``DATA_DIR/serve.json`` once every HTTP process is ready. SIGTERM/SIGINT stop
everything in the reverse order; every child also gets SIGTERM from the kernel if the
supervisor dies (see :mod:`qtraq_live.runtime.children`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import redis
import uvicorn
from uvicorn.supervisors import Multiprocess

from ..config import PROCESS_MODES, Settings, private_dir
from ..errors import ConfigError, Unavailable
from ..metrics import use_multiprocess_dir
from ..realtime import ws_adapter
from ..web.http_protocol import HeaderDeadlineProtocol
from ..workers import channels, dlt
from .children import Child, die_with_parent
from .embedded_redis import EmbeddedRedis
from .logs import logging_config

log = logging.getLogger(__name__)

# uvicorn's websockets Sans-I/O protocol, keeping less per idle socket where it fits (realtime/ws_adapter.py)
WS_IMPL = ws_adapter.WS_IMPL
STARTUP_TIMEOUT_S = 60.0
POLL_S = 0.5
STOP_TIMEOUT_S = 15.0

Hook = Callable[[Any], Awaitable[None]]  # async hook(ctx: duties.Context)


def embedded_redis(settings: Settings) -> EmbeddedRedis:
    return EmbeddedRedis(settings.data_dir / "redis")


def bind_socket(host: str, port: int) -> socket.socket:
    """The one listening socket every HTTP process accepts on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def public_url(host: str, port: int) -> str:
    """A URL this machine can open: wildcard addresses become loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def http_app(settings: Settings, mode: str, supervisor_pid: int) -> Any:
    """uvicorn's app factory, called in each HTTP process (so the app never crosses processes)."""
    die_with_parent(supervisor_pid)
    from ..web.app import create_app

    return create_app(settings, mode)


def uvicorn_config(settings: Settings, mode: str, workers: int) -> uvicorn.Config:
    proxies: list[str] = settings["security.trusted_proxies"]
    ping = float(settings["hub.ping_interval_s"])
    return uvicorn.Config(
        functools.partial(http_app, settings, mode, os.getpid()),
        factory=True,
        workers=workers,
        ws=WS_IMPL,
        http=functools.partial(HeaderDeadlineProtocol, header_timeout_s=float(settings["server.header_timeout_s"])),
        ws_per_message_deflate=False,
        ws_ping_interval=ping,
        ws_ping_timeout=ping,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        lifespan="on",
        log_config=logging_config(settings),
        log_level=str(settings["log_level"]),
        access_log=bool(settings["server.access_log"]),
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def background_children(settings: Settings, mode: str) -> list[Child]:
    """The duties process (primary only), then the RQ workers (embedded Redis only)."""
    if mode != "all":
        return []
    children = [Child("duties", _python("qtraq_live.cli", "duties"), STOP_TIMEOUT_S)]
    if settings.embedded_redis:
        # These workers reach only the embedded Redis, which stops with the supervisor: if the
        # supervisor is killed, RQ's warm shutdown would retry a vanished Redis for minutes.
        # SIGKILL instead; the notice ledger turns a send cut short into "outcome unknown",
        # never a second send.
        children += [Child(f"rq-worker-{i + 1}", _python("qtraq_live.cli", "worker"), STOP_TIMEOUT_S,
                           death_signal=signal.SIGKILL)
                     for i in range(settings["notify.workers"])]
    return children


async def prepare(settings: Settings, hooks: Sequence[Hook] = ()) -> None:
    """Start-up step of the primary: refill an empty Redis from SQLite, then seed."""
    from .duties import open_context
    from ..record.rebuild import rebuild, record_has_clinics, redis_is_empty
    from .seed import apply_config_seed

    async with open_context(settings) as ctx:
        if await redis_is_empty(ctx.redis) and await record_has_clinics(ctx.store):
            log.warning("Redis holds no clinics but the SQLite record does: rebuilding live state")
            await rebuild(ctx.store, ctx.redis)
            log.info("rebuild finished")
        await apply_config_seed(ctx)
        for hook in hooks:
            await hook(ctx)


def _serve_file(settings: Settings) -> Path:
    return settings.data_dir / "serve.json"


def running_pid(settings: Settings) -> int | None:
    """The pid of a live supervisor on this data dir, from its serve.json."""
    try:
        pid = int(json.loads(_serve_file(settings).read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid != os.getpid() and b"qtraq" in cmdline else None


def _write_serve_file(settings: Settings, url: str, port: int) -> None:
    path = _serve_file(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "port": port, "pid": os.getpid()}))
    os.replace(tmp, path)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def check_mode(settings: Settings, mode: str) -> None:
    if mode not in PROCESS_MODES:
        raise ConfigError("role", f"expected one of {', '.join(PROCESS_MODES)}")
    if mode == "hub" and settings.embedded_redis:
        raise ConfigError("redis_url", "--role hub needs QTRAQ_REDIS_URL: the Redis shared with the primary")


def serve(settings: Settings, *, mode: str = "all", host: str | None = None, port: int | None = None,
          workers: int | None = None, hooks: Sequence[Hook] = (),
          on_ready: Sequence[Callable[[str], None]] = (), extra_children: Sequence[Child] = ()) -> int:
    """Run until SIGTERM/SIGINT. Returns the exit status. Raises ConfigError/Unavailable early."""
    check_mode(settings, mode)
    channels.configured(settings)  # a bad [notify] Apprise URL stops start-up, naming the key
    dlt.check(settings)  # as does a notice kind without its DLT template (notify.dlt.templates.<kind>)
    host = settings["server.host"] if host is None else host
    port = settings["server.port"] if port is None else port
    workers = settings["server.workers"] if workers is None else workers
    if workers < 1:
        raise ConfigError("server.workers", "must be at least 1")
    private_dir(settings.data_dir)
    if (other := running_pid(settings)) is not None:
        raise Unavailable(f"qtraq-live is already running on {settings.data_dir} (pid {other})")
    signal.signal(signal.SIGTERM, _interrupt)  # until the main loop takes over: unwind cleanly
    use_multiprocess_dir(settings.data_dir / "metrics")  # every child's samples, summed by /metrics
    try:
        with contextlib.ExitStack() as stack:
            if settings.embedded_redis:
                redis_server = embedded_redis(settings)
                redis_server.start()
                stack.callback(redis_server.stop)
            if mode == "all":
                try:
                    asyncio.run(prepare(settings, hooks))
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    raise Unavailable(f"cannot reach Redis: {exc}") from None
            children = [*background_children(settings, mode), *extra_children]
            for child in children:
                child.start()
                stack.callback(child.stop)
            sock = stack.enter_context(contextlib.closing(bind_socket(host, port)))
            stack.callback(_serve_file(settings).unlink, missing_ok=True)
            return _run_http(settings, uvicorn_config(settings, mode, workers), sock, host,
                             children, on_ready)
    except KeyboardInterrupt:
        log.info("stopped during start-up")
        return 0


def _run_http(settings: Settings, config: uvicorn.Config, sock: socket.socket, host: str,
              children: Sequence[Child], on_ready: Sequence[Callable[[str], None]]) -> int:
    """The main loop: uvicorn's multiprocess manager plus our own children, polled in turn."""
    port = sock.getsockname()[1]
    http = Multiprocess(config, [sock])  # from here on, signals are queued and handled below
    http.init_processes()
    started = time.monotonic()
    ready = False
    started_up: set[int | None] = set()  # pids of HTTP processes that finished their start-up
    while not http.should_exit.wait(POLL_S):
        http.handle_signals()
        starting = [p for p in http.processes if p.pid not in started_up]
        if not starting or any(p.process.exitcode is not None for p in http.processes):
            # uvicorn's check also kills a process that leaves its health ping unanswered for 5 s;
            # a process still importing the app cannot answer yet (its answering thread starts
            # after), so on a loaded machine it killed a new process (at start, or the
            # replacement of a dead one) over and over. While one is starting, only processes
            # that exited are replaced (and hung ones once it has started).
            http.keep_subprocess_alive()
        started_up.update(p.pid for p in starting if p.process.exitcode is None and p.is_ready(timeout=POLL_S))
        for child in children:
            child.keep_alive()
        if not ready and all(p.pid in started_up for p in http.processes):
            ready = True
            url = public_url(host, port)
            _write_serve_file(settings, url, port)
            log.info("serving on %s with %d HTTP process(es)", url, len(http.processes))
            for callback in on_ready:
                callback(url)
        elif not ready and time.monotonic() - started > STARTUP_TIMEOUT_S:
            log.error("HTTP processes did not become ready in %.0f s", STARTUP_TIMEOUT_S)
            http.should_exit.set()
    log.info("stopping")
    http.terminate_all()
    http.join_all()
    return 0 if ready else 1
