"""The engine's Lua, counted and traced, for comparing two trees.

    PYTHONPATH=<tree> python benchmarks/engine_lua.py --callgrind [--counters 5] [--presses 500]
    PYTHONPATH=<tree> python benchmarks/engine_lua.py --trace FILE

``--callgrind`` runs the embedded redis-server under valgrind's callgrind, collecting only inside
``evalShaCommand`` (the engine's scripts and the Redis commands they call), and prints the
instructions per ``issue`` and per ``next`` press (one queue, ``--counters`` counters taking
turns, ``--presses`` tickets issued then called). Instructions do not drift with the machine's
load, unlike timings. ``--trace`` writes every answer of the engine's scripts and every stream
entry, in order, for a fixed sequence of operations with a fixed clock and fixed tokens: two
trees whose traces are equal write the same JSON byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from qtraq_live import queue_engine
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.runtime.embedded_redis import SERVER_BIN


class Clock:
    """A clock that moves 1.5 s a reading: the same run gives the same times."""

    def __init__(self) -> None:
        self.now = 1_765_000_000.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


class Traced(QueueEngine):
    """The engine, keeping every raw answer of its scripts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers: list[str] = []

    async def _eval(self, script: Any, argv: list[Any]) -> Any:
        raw = await super()._eval(script, argv)
        self.answers.append(f"{argv[0]} {raw}")
        return raw


def start_redis(folder: Path, callgrind: bool) -> tuple[subprocess.Popen[bytes], str]:
    sock = folder / "redis.sock"
    conf = folder / "redis.conf"
    conf.write_text(f"port 0\nunixsocket {sock}\nsave ''\nappendonly no\ndir {folder}\n")
    cmd = [str(SERVER_BIN), str(conf)]
    if callgrind:
        cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=evalShaCommand",
               f"--callgrind-out-file={folder}/cg.out", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("redis-server did not start")
        time.sleep(0.1)
    return proc, f"unix://{sock}"


def dump(proc: subprocess.Popen[bytes], folder: Path, n: int) -> int:
    """Instructions collected since the last dump (callgrind_control writes cg.out.N)."""
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    path = folder / f"cg.out.{n}"
    deadline = time.monotonic() + 60
    while not (path.exists() and "totals:" in path.read_text()):
        if time.monotonic() > deadline:
            raise SystemExit(f"no callgrind dump {path}")
        time.sleep(0.2)
    found = re.search(r"^totals:\s+(\d+)", path.read_text(), re.M)
    return int(found.group(1)) if found else 0


async def setup(engine: QueueEngine, counters: int) -> None:
    await engine.create_clinic("c1", "Clinic \"One\"", mask_names=False)
    await engine.create_queue("c1", "gp", "General", "A", avg_service_s=300)
    for i in range(counters):  # every counter has pressed once: all open
        await engine.next("gp", str(i + 1))


async def counted(url: str, proc: subprocess.Popen[bytes], folder: Path, counters: int, presses: int) -> None:
    redis = aioredis.from_url(url, decode_responses=True)
    engine = QueueEngine(redis, clock=Clock())
    await setup(engine, counters)
    dump(proc, folder, 1)
    for i in range(presses):
        await engine.issue("gp", name=f"Patient {i}", notify=i % 3 == 0, lang="hi" if i % 2 else None)
    issue = dump(proc, folder, 2)
    for i in range(presses):
        await engine.next("gp", str(i % counters + 1))
    nxt = dump(proc, folder, 3)
    print(f"counters {counters}, presses {presses}: instructions per issue {issue / presses:,.0f}, "
          f"per next {nxt / presses:,.0f}")
    await redis.aclose()


async def traced(url: str, out: Path) -> None:
    redis = aioredis.from_url(url, decode_responses=True)
    tokens = iter(f"token{i:027d}" for i in range(10_000))
    queue_engine.new_token = lambda: next(tokens)  # type: ignore[assignment]  # fixed tokens: a fixed trace
    engine = Traced(redis, clock=Clock())
    await setup(engine, 3)
    await engine.create_queue("c1", "lab", "Lab \\ tests", "L", self_checkin=True, notify_ahead=2)
    ids = []
    for i, name in enumerate(["Ramesh Kumar", "आशा देवी", 'Q "uote" \\ back', None, "Long " * 15]):
        t = await engine.issue("gp", name=name, priority=i % 2, notify=i % 2 == 0, lang="hi" if i else None,
                               appointment_id=7 if i == 2 else None, source="self" if i == 3 else "reception")
        ids.append(t["id"])
    await engine.issue("lab", name="Lab patient", arrival_ms=1_765_000_000_000)
    await engine.next("gp", "1")
    await engine.next("gp", "2")
    called = [t["id"] for t in (await engine.queue_snapshot("gp"))["now_serving"]]
    await engine.recall(called[0])
    await engine.serve(called[0])
    await engine.skip(called[1])
    await engine.requeue(called[1])
    await engine.move_back(ids[0], 1)
    await engine.notify_on(ids[3])
    await engine.transfer(ids[3], "lab")
    await engine.pause("gp")
    await engine.pause("gp")
    await engine.resume("gp")
    await engine.next("gp", "1", idempotency_key="k1")
    await engine.next("gp", "1", idempotency_key="k1")
    await engine.call(ids[3], "3")
    await engine.done(ids[3])
    await engine.cancel(ids[-1])
    await engine.update_queue("gp", name="General OPD", archived=False)
    await engine.update_clinic("c1", lang="hi", region="NP")
    await engine.clinic_snapshot("c1")
    await engine.get_clinic("c1")
    await engine.queue_definition("gp")
    await engine.ticket(ids[0])
    await engine.ticket_by_token("token" + "0" * 27)
    for _ in range(8):
        await engine.next("gp", "2")
    entries = await redis.xrange("qt:c:c1:events")
    recent = await redis.lrange("qt:c:c1:recent", 0, -1)
    out.write_text("\n".join([*engine.answers, *(e["e"] for _, e in entries), *recent]) + "\n")
    print(f"{len(engine.answers)} answers, {len(entries)} events written to {out}")
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--trace", type=Path)
    parser.add_argument("--counters", type=int, default=5)
    parser.add_argument("--presses", type=int, default=500)
    args = parser.parse_args()
    if not args.callgrind and not args.trace:
        parser.error("--callgrind or --trace")
    with tempfile.TemporaryDirectory(prefix="engine-lua-") as tmp:
        folder = Path(tmp)
        proc, url = start_redis(folder, args.callgrind)
        try:
            if args.callgrind:
                asyncio.run(counted(url, proc, folder, args.counters, args.presses))
            else:
                asyncio.run(traced(url, args.trace))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"engine from {queue_engine.__file__}", file=sys.stderr)


if __name__ == "__main__":
    main()
