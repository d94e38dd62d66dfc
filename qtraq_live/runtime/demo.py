"""``qtraq-live demo``: ``serve`` with a seeded clinic, printing every URL and login.

The passwords and the display key are generated once per data dir and kept in
``DATA_DIR/demo.json`` (mode 0600), so a restart seeds nothing twice and prints the same
logins. With ``--simulate`` a small driver process (:func:`simulator_main`) keeps
patients arriving and counters calling, through the engine, so the screens move.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings, private_dir
from ..engine.redis_keys import secret_hash
from ..errors import ConfigError, Conflict
from ..queue_engine import QueueEngine
from ..record import access
from . import logs, redis_conn, server
from .children import Child
from .duties import Context
from .seed import ensure_clinic, ensure_user

log = logging.getLogger(__name__)

CLINIC: dict[str, Any] = {
    "id": "demo", "name": "Sunrise Clinic", "timezone": "Asia/Kolkata",
    "queues": [
        {"id": "gp", "name": "Dr. Sharma", "prefix": "A", "self_checkin": True},
        {"id": "lab", "name": "Lab", "prefix": "L"},
    ],
}
RECEPTION_COUNTER = "1"  # the counter of the reception URL the demo prints: a person's desk
SIM_COUNTERS = ("2", "3")  # --simulate calls only at these, never at the person's counter
STAFF: list[tuple[str, str, tuple[str, ...]]] = [  # username, role, queues
    ("admin", "admin", ()),
    ("reception", "reception", ()),
    ("doctor", "doctor", ("gp",)),
]


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "demo.json"


def load_state(settings: Settings) -> dict[str, Any]:
    """The demo's generated secrets, created on first use."""
    path = state_path(settings)
    if path.exists():
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    state = {"passwords": {name: secrets.token_urlsafe(9) for name, _, _ in STAFF}, "display_key": ""}
    save_state(settings, state)
    return state


def save_state(settings: Settings, state: dict[str, Any]) -> None:
    path = state_path(settings)
    private_dir(settings.data_dir)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
    os.replace(path.with_suffix(".tmp"), path)


async def seed(ctx: Context) -> None:
    """Add whatever of the demo clinic, its staff and its display key is missing."""
    state = load_state(ctx.settings)
    await ensure_clinic(ctx.engine, CLINIC)
    for username, role, queues in STAFF:
        await ensure_user(ctx, username, state["passwords"][username], role, queues)
    key = state["display_key"]
    if not key or await ctx.store.fetchone(
            "SELECT 1 FROM display_keys WHERE key_hash = ? AND revoked_at IS NULL", (secret_hash(key),)) is None:
        state["display_key"] = await access.create_display_key(ctx.store, ctx.redis, CLINIC["id"], "demo screen")
        save_state(ctx.settings, state)


def welcome(settings: Settings, url: str) -> str:
    """Everything a newcomer needs, printed once the server answers."""
    state = load_state(settings)
    url = (settings["server.public_url"] or url).rstrip("/")
    rows = [
        ("Start page", f"{url}/"),
        ("Waiting-room display", f"{url}/display/demo?key={state['display_key']}"),
        ("Reception console", f"{url}/reception?queue=gp&counter={RECEPTION_COUNTER}"),
        ("Admin", f"{url}/admin"),
        ("Self check-in (QR page)", f"{url}/join/gp"),
        ("QR poster to print", f"{url}/join/gp/qr"),
        ("Patient account portal", f"{url}/account"),
        ("Demo outbox (codes)", f"{url}/demo/outbox"),
        ("API", f"{url}/api/v1/clinics/demo"),
    ]
    lines = [f"\nqtraq-live demo: Sunrise Clinic is open at {url}\n"]
    lines += [f"  {label:<24} {link}" for label, link in rows]
    lines.append(f"\n  Staff logins (kept in {state_path(settings)}):")
    for username, role, queues in STAFF:
        scope = f" (queue {', '.join(queues)})" if queues else ""
        lines.append(f"    {username:<10} password {state['passwords'][username]}   {role}{scope}")
    if settings["log_file"]:
        lines.append(f"\n  Logs go to {settings['log_file']}.")
    lines.append("\nPress Ctrl+C to stop.\n")
    return "\n".join(lines)


def lan_address() -> str | None:
    """This machine's address on its local network (no packet is sent), for phones to reach."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, only picks the outgoing interface
        address: str = s.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


def demo_settings(settings: Settings, host: str | None, port: int | None) -> dict[str, str]:
    """What the demo changes, as environment variables (its child processes read them too):
    the verification codes go to the demo's outbox, logs go to DATA_DIR/demo.log (so the banner
    stays readable), and served on every interface the public URL is this machine's LAN address
    (so phones can open the QR poster's link)."""
    env = {"QTRAQ_DEMO_OUTBOX": "1"}
    if not settings["log_file"]:
        env["QTRAQ_LOG_FILE"] = str((settings.data_dir / "demo.log").resolve())
    port = settings["server.port"] if port is None else port
    if host in ("0.0.0.0", "::") and not settings["server.public_url"] and port:
        lan = lan_address()
        if lan:
            env["QTRAQ_PUBLIC_URL"] = f"http://{lan}:{port}"
    return env


def run(settings: Settings, *, host: str | None = None, port: int | None = None, simulate: bool = False) -> int:
    if settings.production:
        raise ConfigError("env", "the demo creates known logins; it refuses QTRAQ_ENV=production")
    env = demo_settings(settings, host, port)
    os.environ.update(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.replace(demo__outbox=True, log_file=env.get("QTRAQ_LOG_FILE", settings["log_file"]),
                                server__public_url=env.get("QTRAQ_PUBLIC_URL", settings["server.public_url"]))
    logs.configure_logging(settings)

    def announce(url: str) -> None:
        print(welcome(settings, url), flush=True)

    driver = [sys.executable, "-c", "from qtraq_live.runtime.demo import simulator_main; simulator_main()"]
    drivers = [Child("simulator", driver)] if simulate else []
    return server.serve(settings, host=host, port=port, hooks=[seed], on_ready=[announce], extra_children=drivers)


# -- the --simulate driver ---------------------------------------------------------------------

ARRIVAL_EVERY_S = 7.0
CALL_EVERY_S = 9.0
MAX_WAITING = 8
NAMES = ["Asha", "Ravi", "Meera", "Arjun", "Fatima", "John", "Priya", "Vikram", "Lakshmi", "Imran"]


async def simulate(engine: QueueEngine, stop: asyncio.Event, rng: random.Random) -> None:
    """Arrivals and "next" presses at a gentle, random pace, until ``stop`` is set."""
    queues = [q["id"] for q in CLINIC["queues"]]
    loop = asyncio.get_running_loop()
    next_arrival = next_call = loop.time()
    while not stop.is_set():
        now = loop.time()
        queue_id = rng.choice(queues)
        try:
            if now >= next_arrival:
                snapshot = await engine.queue_snapshot(queue_id)
                if len(snapshot["waiting"]) < MAX_WAITING:
                    await engine.issue(queue_id, name=f"{rng.choice(NAMES)} {rng.choice('ABKMRS')}.",
                                       actor="simulator")
                next_arrival = now + rng.expovariate(1 / ARRIVAL_EVERY_S)
            if now >= next_call:
                await engine.next(queue_id, counter=rng.choice(SIM_COUNTERS), actor="simulator")
                next_call = now + rng.uniform(0.5, 1.5) * CALL_EVERY_S
        except Conflict:  # a paused queue: leave it to the humans
            log.debug("simulator skipped paused queue %s", queue_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.1, min(next_arrival, next_call) - loop.time()))


async def run_simulator(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = redis_conn.async_client(settings)
    try:
        engine = QueueEngine(client, stream_maxlen=settings["engine.stream_maxlen"])
        await engine.load_scripts()
        await simulate(engine, stop, random.Random())
    finally:
        await client.aclose()


def simulator_main() -> None:
    """Entry point of the driver process that ``demo --simulate`` supervises."""
    settings = load_settings()
    logs.configure_logging(settings)
    asyncio.run(run_simulator(settings))
