"""The ``qtraq-live`` console script, run as a real process against a temp data dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from qtraq_live.engine.redis_keys import secret_hash
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.runtime.embedded_redis import EmbeddedRedis
from support_serve import clean_env

pytestmark = pytest.mark.slow  # every test runs the console script in a new process

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,}$")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def cli(data_dir: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qtraq-live", *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**clean_env(data_dir), **(env or {})})


def db(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "qtraq.db")
    conn.row_factory = sqlite3.Row
    return conn


def test_help_lists_every_command(data_dir: Path) -> None:
    out = cli(data_dir, "--help").stdout
    for word in ("serve", "worker", "demo", "user", "token", "display-key", "rebuild"):
        assert word in out


def test_user_add_and_token_create(data_dir: Path) -> None:
    added = cli(data_dir, "user", "add", "Alice", "--role", "doctor", "--queue", "gp", "--queue", "lab",
                "--password-stdin", stdin="a long enough secret\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "created doctor user Alice (id 1)"
    with db(data_dir) as conn:
        row = conn.execute("SELECT username, role, queues, password_hash FROM users").fetchone()
    assert (row["username"], row["role"], json.loads(row["queues"])) == ("alice", "doctor", ["gp", "lab"])
    assert row["password_hash"].startswith("$argon2")

    created = cli(data_dir, "token", "create", "alice")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert TOKEN.match(token)
    assert token not in created.stderr  # never logged
    with db(data_dir) as conn:
        stored = conn.execute("SELECT token_hash FROM api_tokens").fetchone()["token_hash"]
    assert stored == secret_hash(token)
    assert not EmbeddedRedis(data_dir / "redis").is_running()  # the command's own Redis is gone


def test_duplicate_user_and_unknown_user_fail(data_dir: Path) -> None:
    args = ("user", "add", "bob", "--role", "reception", "--password-stdin")
    assert cli(data_dir, *args, stdin="bob-the-receptionist-1\n").returncode == 0
    again = cli(data_dir, *args, stdin="bob-the-receptionist-2\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    missing = cli(data_dir, "token", "create", "nobody")
    assert missing.returncode == 1
    assert "unknown user nobody" in missing.stderr


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("user", "add", "carol", "--role", "nurse", "--password-stdin"), "secret-secret\n", "invalid choice: 'nurse'"),
    (("user", "add", "carol", "--role", "doctor"), "", "--password-stdin"),
    (("user", "add", "carol", "--role", "doctor", "--password-stdin"), "short\n", "password"),
    (("user", "add", "carol", "--role", "admin", "--queue", "gp", "--password-stdin"), "secret-secret\n",
     "only a doctor"),
    (("user",), "", "required: COMMAND"),
])
def test_bad_usage_exits_2_with_a_clear_message(data_dir: Path, args: tuple[str, ...], stdin: str,
                                                message: str) -> None:
    result = cli(data_dir, *args, stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_display_key_while_redis_runs(data_dir: Path) -> None:
    """With the server's Redis up, the command uses it instead of starting its own."""
    async def make_clinic(url: str) -> None:
        client = aioredis.from_url(url, decode_responses=True)
        engine = QueueEngine(client)
        await engine.load_scripts()
        await engine.create_clinic("north", "North Clinic")
        await client.aclose()

    with EmbeddedRedis(data_dir / "redis") as server:
        asyncio.run(make_clinic(server.url))
        made = cli(data_dir, "display-key", "north", "--label", "lobby TV")
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip().splitlines()[-1]
        assert TOKEN.match(key)
        assert server.is_running()
        unknown = cli(data_dir, "display-key", "south")
    assert unknown.returncode == 1
    assert "unknown clinic south" in unknown.stderr
    with db(data_dir) as conn:
        row = conn.execute("SELECT clinic, key_hash, label FROM display_keys").fetchone()
    assert tuple(row) == ("north", secret_hash(key), "lobby TV")


@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("demo", "--port", "0")])
def test_production_refuses_without_secret_key(data_dir: Path, command: tuple[str, ...]) -> None:
    result = cli(data_dir, *command, env={"QTRAQ_ENV": "production"})
    assert result.returncode == 2
    assert "QTRAQ_SECRET_KEY is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_refuses_production(data_dir: Path) -> None:
    result = cli(data_dir, "demo", "--port", "0", env={"QTRAQ_ENV": "production", "QTRAQ_SECRET_KEY": "s" * 40,
                                                             "QTRAQ_PUBLIC_URL": "https://q.example.org",
                                                             "QTRAQ_GRIEVANCE_CONTACT": "Grievance Officer"})
    assert result.returncode == 2
    assert "refuses QTRAQ_ENV=production" in result.stderr


def test_hub_role_needs_a_redis_url(data_dir: Path) -> None:
    result = cli(data_dir, "serve", "--role", "hub", "--port", "0")
    assert result.returncode == 2
    assert "--role hub needs QTRAQ_REDIS_URL" in result.stderr
    assert not (data_dir / "redis").exists()


def test_bad_setting_is_reported_by_key(data_dir: Path) -> None:
    result = cli(data_dir, "serve", env={"QTRAQ_PORT": "http"})
    assert result.returncode == 2
    assert "'server.port'" in result.stderr
    assert "Traceback" not in result.stderr



def test_worker_burst_exits_0_on_empty_queues(data_dir: Path, redis_url: str) -> None:
    result = cli(data_dir, "worker", "--burst", env={"QTRAQ_REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr


def test_unreachable_redis_is_one_clear_line(data_dir: Path) -> None:
    result = cli(data_dir, "serve", "--port", "0", env={"QTRAQ_REDIS_URL": "redis://127.0.0.1:1"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("qtraq-live: error: ")
    assert "Traceback" not in result.stderr


def test_user_add_prompts_twice_on_a_terminal(data_dir: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: qtraq-live with the pseudo-terminal as its controlling tty
        try:
            os.execvpe("qtraq-live", ["qtraq-live", "user", "add", "zed", "--role", "admin"], clean_env(data_dir))
        finally:
            os._exit(127)
    seen = b""

    def answer(prompt: bytes, reply: bytes) -> None:
        nonlocal seen
        while prompt not in seen:
            seen += os.read(fd, 1024)
        os.write(fd, reply)

    answer(b"Password: ", b"secret-secret\n")
    answer(b"Repeat password: ", b"secret-secret\n")
    with contextlib.suppress(OSError):  # EIO once the child has exited
        while chunk := os.read(fd, 1024):
            seen += chunk
    os.close(fd)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert b"created admin user zed" in seen
    assert b"secret-secret" not in seen  # not echoed
