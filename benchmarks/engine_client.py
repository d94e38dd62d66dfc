"""The engine's client side, counted: the server process's own instructions per press.

    python benchmarks/engine_client.py [--presses 300]
    python benchmarks/engine_client.py --baseline 696627d   # that commit's client and this tree's

What an HTTP process does around each Lua call (``QueueEngine.issue`` / ``next``: the arguments,
the Redis client, the answer's parsing and views), measured as instructions under valgrind's
callgrind: this process runs twice under it on a private redis-server, once setting up a
clinic and stopping there, once also issuing and calling ``--presses`` tickets one by one; the
difference, divided by the presses, is one ``issue`` plus one ``next``. Instructions do not drift
with the machine's load, unlike the wall-clock figures of ``engine.py`` (whose rounds on a slow
hour of this box spread by ±25 %); the Lua itself is counted by ``engine_lua.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trees import exported, tree_env  # noqa: E402

HERE = Path(__file__).resolve()


async def presses(url: str, n: int) -> None:
    """A clinic of ten queues, then ``n`` tickets issued and ``n`` called, one by one."""
    from qtraq_live.config import load_settings
    from qtraq_live.queue_engine import QueueEngine
    try:
        from qtraq_live.runtime.redis_conn import async_client
    except ModuleNotFoundError:  # a tree from before the regrouping (issue #18) keeps it flat
        from qtraq_live.redis_conn import async_client  # type: ignore[no-redef]  # regroup: keep

    engine = QueueEngine(async_client(load_settings({"QTRAQ_REDIS_URL": url, "QTRAQ_DATA_DIR": tempfile.mkdtemp()})))
    await engine.create_clinic("bench", "Bench", timezone="UTC")
    for q in range(10):
        await engine.create_queue("bench", f"bench-q{q}", f"OPD {q}", "A")
    for _ in range(20):
        await engine.issue("bench-q0")
    for i in range(n):
        await engine.issue(f"bench-q{i % 10}")
    for i in range(n):
        await engine.next(f"bench-q{i % 10}", "1")


def counted(n: int, source: Path | None) -> int:
    """Instructions of this script's ``--run n`` under callgrind, with ``source``'s qtraq_live."""
    from engine_lua import start_redis  # this tree's: the counted child imports no module of it

    with tempfile.TemporaryDirectory() as folder:
        redis, url = start_redis(Path(folder), callgrind=False)
        try:
            out = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/client.out",
                 sys.executable, str(HERE), "--run", str(n), "--url", url],
                env={**tree_env(source), "PYTHONHASHSEED": "0"}, cwd=source or HERE.parent,
                capture_output=True, text=True, check=True)
        finally:
            redis.terminate()
            redis.wait()
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit("callgrind printed no count:\n" + out.stderr[-2000:])
    return int(found[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--baseline", metavar="GIT_REF", help="also count that commit's client")
    ap.add_argument("--run", type=int, help=argparse.SUPPRESS)  # the counted child
    ap.add_argument("--url", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run is not None:
        asyncio.run(presses(a.url, a.run))
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this tree", None)]
        if a.baseline:
            trees.insert(0, (a.baseline, exported(a.baseline, Path(tmp))))
        for name, source in trees:
            per_pair = (counted(a.presses, source) - counted(0, source)) / a.presses
            print(f"[{name}] client instructions per issue + next: {per_pair / 1000:,.0f} k "
                  f"({a.presses} of each, one by one)")


if __name__ == "__main__":
    main()
