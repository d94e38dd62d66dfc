"""Anonymous page load for benchmarks/fanout.py: open-loop GETs of public pages at a fixed rate.

Run by the coordinator, on the load cores, as ``python anonload.py SPEC.json OUT.json``; SPEC is
``{"base": "http://127.0.0.1:PORT", "paths": [...], "rate": R}``. It GETs a random path every
1/R s on keep-alive HTTP/1.1 connections (a new one while all are busy, up to
``MAX_CONNECTIONS``), never waiting for an answer before the next request is due, until its
stdin closes; then it writes ``{"statuses": {status: count}, "late": n}`` to OUT. A separate
process with a small hand-written client, so that neither the coordinator's press timing nor
a heavy HTTP library is what the figures measure.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

MAX_CONNECTIONS = 64


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, host: str, path: str) -> str:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


async def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    url = urlsplit(spec["base"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    paths: list[str] = spec["paths"]
    rate = float(spec["rate"])
    statuses: Counter[str] = Counter()
    idle: list[Connection] = []
    opened = 0
    late = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(path: str) -> None:
        nonlocal opened
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                opened += 1
                conn = Connection(*await asyncio.open_connection(host, port))
            statuses[await conn.get(f"{host}:{port}", path)] += 1
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            statuses[type(exc).__name__] += 1
            opened -= 1

    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    stopped = asyncio.ensure_future(stdin.read())
    start, n = time.monotonic(), 0
    while not stopped.done():
        await asyncio.wait([stopped], timeout=max(0.0, start + n / rate - time.monotonic()))
        if stopped.done():
            break
        n += 1
        if not idle and opened >= MAX_CONNECTIONS:
            late += 1  # every connection busy: the server is not keeping up
            continue
        task = asyncio.create_task(one(random.choice(paths)))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending, return_exceptions=True)
    with open(out_path, "w") as out:
        json.dump({"statuses": dict(statuses), "late": late}, out)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    else:
        uvloop.run(main(sys.argv[1], sys.argv[2]))
